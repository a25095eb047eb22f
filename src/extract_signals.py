"""signals stage: every record read once into data/signals/signals.npy (+ stats.json), see ecgalign.signals."""
import json

from ecgalign import params, ptbxl
from ecgalign.artifacts import RAW, SIGNALS, load_reports
from ecgalign.errors import run
from ecgalign.signals import default_workers, extract


def main() -> None:
    p = params.load()
    rows = load_reports()
    root = ptbxl.records_root(RAW)
    built = json.loads((RAW / ptbxl.MANIFEST).read_text(encoding="utf-8")).get("sampling_rate")
    if built not in (None, p.data.sampling_rate):
        raise ptbxl.DataError(f"{RAW / ptbxl.MANIFEST} was built for {built} Hz but data.sampling_rate = "
                              f"{p.data.sampling_rate}: rerun the download stage (dvc repro)")
    # the normalisation statistics come from the folds the model pretrains on: under the disjoint protocol
    # (split.pretrain_folds) no statistic of the label-pool, validation or test folds reaches the pretrained model
    stats = extract(rows, root, p.data.sampling_rate, p.split.pretrain_pool, SIGNALS, workers=default_workers())
    n, _, T = stats["shape"]
    print(f"signals: {n} records x 12 leads x {T} samples at {stats['sampling_rate']} Hz -> {SIGNALS}/signals.npy "
          f"({n * 12 * T * 4 / 1e6:.1f} MB) in {stats['seconds']:.2f} s ({stats['records_per_s']:.0f} records/s, "
          f"{stats['workers']} processes; {stats['wfdb_records']} via wfdb.rdsamp); "
          f"stats from {stats['n_train_records']} pretraining records (folds {stats['train_folds']})")


if __name__ == "__main__":
    from ecgalign.cost import measured
    with measured("signals"):
        run(main)
