"""ecg_embeddings stage: data/model/model.pt over every record -> data/ecg_embeddings/{z_ecg,e_ecg}.npy
(row-aligned with data/reports.jsonl, float32)."""
from ecgalign import params
from ecgalign.atomic import save_npy
from ecgalign.models import encode_all, load_model
from ecgalign.signals import load_signals
from ecgalign.training import resolve_device

MODEL, SIGNALS, OUT = "data/model/model.pt", "data/signals", "data/ecg_embeddings"


def main():
    p = params.load()
    device = resolve_device(p.train.device)
    model = load_model(MODEL, map_location=device, encoder=p.ecg.encoder)
    signals, _ = load_signals(SIGNALS)
    z, e = encode_all(model, signals, batch_size=256, device=device)
    save_npy(f"{OUT}/z_ecg.npy", z)
    save_npy(f"{OUT}/e_ecg.npy", e)
    print(f"{OUT}: z_ecg {z.shape}, e_ecg {e.shape} for {len(signals)} records")


if __name__ == "__main__":
    main()
