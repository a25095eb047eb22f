"""download stage: data/raw/ holds the PTB-XL tables and dataset.json, the manifest naming where the records live.

data.source=synthetic generates the whole dataset (tables + records) into data/raw; local and physionet copy only the
two tables (a few MB) and point the manifest at the PTB-XL folder, after checking that every record of the chosen
sampling rate is there: the records themselves (0.5-5 GB) are never copied into the DVC cache.
"""
import shutil
import time
from pathlib import Path

from ecgalign import params, ptbxl
from ecgalign.artifacts import DATA_METRICS, RAW
from ecgalign.atomic import atomic_dir, write_json
from ecgalign.errors import run


def main() -> None:
    p = params.load()
    d = p.data
    start = time.time()
    with atomic_dir(RAW) as tmp:
        if d.source == "synthetic":
            from ecgalign.synthetic import generate
            generate(tmp, n_records=d.synthetic_records, seed=d.seed, sampling_rate=d.sampling_rate)
            root = tmp
        else:
            if d.source == "physionet":
                from ecgalign.download import prepare_physionet
                root = prepare_physionet(d)
            else:
                root = Path(d.path).resolve()
                missing = [name for name in (ptbxl.DATABASE, ptbxl.STATEMENTS) if not (root / name).is_file()]
                if missing:
                    raise ptbxl.DataError(f"data.path={d.path}: {root} holds no {' and no '.join(missing)}; "
                                          "point data.path at a PTB-XL folder (tables + records100/)")
            for name in (ptbxl.DATABASE, ptbxl.STATEMENTS):
                shutil.copy2(root / name, tmp / name)
        db = ptbxl.read_database(tmp)
        ptbxl.read_statements(tmp)
        ptbxl.check_records(root, db, d.sampling_rate)
        records = db[ptbxl.filename_column(d.sampling_rate)].tolist()
        ptbxl.write_manifest(tmp, source=d.source, records_root="." if root == tmp else str(root),
                             sampling_rate=d.sampling_rate, n_records=len(db),
                             records_fingerprint=ptbxl.fingerprint(root, records) if root != tmp else None)
    write_json(DATA_METRICS, ptbxl.dataset_identity(RAW, source=d.source, sampling_rate=d.sampling_rate,
                                                   n_records=len(db)))
    print(f"download: {d.source} dataset with {len(db)} records at {d.sampling_rate} Hz in {RAW} "
          f"({time.time() - start:.1f} s)")


if __name__ == "__main__":
    from ecgalign.cost import measured
    with measured("download"):
        run(main)
