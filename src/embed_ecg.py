"""ecg_embeddings stage: data/model/model.pt over every record -> data/ecg_embeddings/{z_ecg,e_ecg}.npy
(row-aligned with data/reports.jsonl, float32), and for a model trained with train.recon_weight > 0 the decoder's
squared error per record and lead, data/ecg_embeddings/reconstruction_mse.npy. For a supervised control (train.loss = supervised) e_ecg holds the
class logits of its head (one column per SCP code it was trained on): it has no shared space."""
from ecgalign import params
from ecgalign.artifacts import E_ECG, ECG_EMBEDDINGS, MODEL, RECON_ERROR, Z_ECG, load_reports, load_signals
from ecgalign.atomic import save_npy
from ecgalign.errors import run
from ecgalign.models import encode_all, load_model
from ecgalign.precision import resolve
from ecgalign.training import resolve_device


def main():
    p = params.load()
    device = resolve_device(p.train.device)
    model = load_model(MODEL, map_location=device, encoder=p.ecg.encoder)
    signals, _ = load_signals(n_records=len(load_reports()))
    decoder = model.decoder is not None
    z, e, *recon = encode_all(model, signals, batch_size=256, device=device,
                              precision=resolve(p.train.precision, device), reconstruction=decoder)
    save_npy(Z_ECG, z)
    save_npy(E_ECG, e)
    RECON_ERROR.unlink(missing_ok=True)
    if decoder:   # a model trained with the reconstruction term: its error per record and lead
        save_npy(RECON_ERROR, recon[0])
    print(f"{ECG_EMBEDDINGS}: z_ecg {z.shape}, e_ecg {e.shape} for {len(signals)} records")


if __name__ == "__main__":
    from ecgalign.cost import measured
    with measured("ecg_embeddings"):
        run(main)
