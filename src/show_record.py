"""Print one record's structured report, its free-text report (original and English translation), the start of its latent text embedding and, once a model is trained, the
SCP statements nearest to its ECG embedding in the shared space; draw records as ECG printouts, optionally coloured
by the integrated gradients of a statement's cosine; score every statement's direction on the test folds.

    python src/show_record.py 1
    python src/show_record.py 1 --plot ecg1.png                      # 12 leads + rhythm strip on ECG paper
    python src/show_record.py 1 --plot ecg1.png --attribution        # coloured by IG of its top statement
    python src/show_record.py 1 --plot ecg1.png --statement IMI      # ... of the statement IMI
    python src/show_record.py 1 2 3 --plot-dir figs/ [--attribution]   # one PNG per record: figs/ecg_<id>.png
    python src/show_record.py --statement-auc out/                   # out/statements.json + out/statement_auc.png
    python src/show_record.py 1 --plot ecg1.png --attention          # dual_attention: each lead's temporal attention
                                                                     # under its trace + ecg1_leads.png (12 x 12 map)
    python src/show_record.py --attention-agreement out/ [--records 300] [--untrained]   # attention vs IG, test folds
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from ecgalign import artifacts as art
from ecgalign.reports import free_text_lines
from ecgalign.errors import ArtifactError, MissingArtifactError, ProjectError


def test_folds() -> list[int]:
    """split.test_folds of params.yaml (validated), or PTB-XL's recommended fold 10 where there is no params.yaml."""
    if not art.PARAMS.exists():
        return [10]
    from ecgalign import params
    return list(params.load(art.PARAMS).split.test_folds)


def statement_keys(model) -> tuple[list[dict], np.ndarray]:
    """statements.jsonl rows and their embeddings through the model's text projection head."""
    from ecgalign.evaluation import project_text

    statements, emb = art.load_statements()
    return statements, project_text(model, emb)


def title_of(record: dict, nearest) -> str:
    lines = [f"ecg_id {record['ecg_id']}  (strat_fold {record.get('strat_fold')})", *record["report"].splitlines()]
    if nearest:
        lines.append("Nearest statements to the ECG embedding (cosine): " +
                     ";  ".join(f"{code} {cos:+.3f}" for code, _, cos in nearest))
    return "\n".join(lines)


def plot_records(ids: list[int], paths: list[Path], by_id: dict, row_of: dict, k: int, attribution: bool,
                 statement: str | None, steps: int, batch_size: int, dpi: int = 150, attention: bool = False) -> None:
    """One printout per record; the model and statement keys are loaded once for all of them."""
    from ecgalign.ecgplot import plot_ecg
    from ecgalign.evaluation import nearest_statements

    signals = art.load_array(art.SIGNALS_ARRAY, len(by_id), "signals")
    fs = {1000: 100, 5000: 500}.get(signals.shape[2])
    if fs is None:
        raise ArtifactError(f"{art.SIGNALS_ARRAY}: {signals.shape[2]} samples a record, expected "
                            f"1000 (100 Hz) or 5000 (500 Hz)")
    have_model = art.E_ECG.exists() and art.MODEL.exists()
    if (attribution or statement) and not have_model:
        raise MissingArtifactError(f"--attribution needs a trained model: {art.MODEL} and "
                                   f"{art.E_ECG} (dvc repro ecg_embeddings)")
    model = codes = keys = None
    if attention:
        from ecgalign.models import load_model
        model = load_model(art.MODEL)
        if model.config["encoder"] != "dual_attention":
            raise ProjectError(f"--attention: {art.MODEL} holds a {model.config['encoder']} encoder, which has no "
                               f"attention; retrain with ecg.encoder=dual_attention")
    elif attribution or statement:
        from ecgalign.models import load_model
        model = load_model(art.MODEL)
        statements, keys = statement_keys(model)
        codes = [s["code"] for s in statements]
        if statement is not None and statement not in codes:
            raise ProjectError(f"--statement {statement}: not a statement of {art.TEXT_STATEMENTS} "
                               f"(codes: {', '.join(codes)})")
    for ecg_id, path in zip(ids, paths):
        nearest = nearest_statements(ecg_id, k=k) if have_model else []
        x = np.asarray(signals[row_of[ecg_id]], dtype=np.float32)
        attr, label = None, ""
        if attention:
            from ecgalign.attention import attention_maps, plot_lead_attention
            maps = attention_maps(model, x)
            attr = maps["time"] - 1.0   # 0 = an even share of the lead's attention
            label = ("colour: temporal attention each stretch of a lead receives from that lead's attention module; "
                     "red above an even share, blue below")
            leads_path = path.with_name(f"{path.stem}_leads.png")
            plot_lead_attention(maps["leads"], leads_path, f"ecg_id {ecg_id}: cross-lead attention")
            print(f"wrote {leads_path}")
        elif model is not None:
            from ecgalign.attribution import integrated_gradients
            code = statement or nearest[0][0]
            attr, info = integrated_gradients(model, x, keys[codes.index(code)], steps=steps, batch_size=batch_size)
            label = (f"colour: integrated gradients of cos(ECG, {code}) = {info['cosine']:+.3f} vs flat-line "
                     f"baseline {info['baseline_cosine']:+.3f}; red raises, blue lowers it")
        plot_ecg(x, fs, path, title=title_of(by_id[ecg_id], nearest), attribution=attr, attribution_label=label,
                 dpi=dpi)
        print(f"wrote {path}")


def write_statement_auc(out_dir: Path) -> None:
    """metrics/statements.json-style content and the 20 best / 20 worst bar chart, for the test folds."""
    from ecgalign import atomic
    from ecgalign.attribution import statement_directions, statement_metrics
    from ecgalign.ecgplot import plot_statement_auc
    from ecgalign.models import load_model

    records = art.load_reports()
    folds = test_folds()
    rows = [i for i, r in enumerate(records) if r["strat_fold"] in folds]
    if not rows:
        raise ProjectError(f"no record of {art.REPORTS} is in the test folds {folds}")
    e_ecg = art.load_array(art.E_ECG, len(records), "ecg_embeddings")
    statements, keys = statement_keys(load_model(art.MODEL))
    table = statement_directions(np.asarray(e_ecg[rows]), keys, [s["code"] for s in statements],
                                 [records[i]["scp_codes"] for i in rows])
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out_dir / "statements.json", statement_metrics(table))
    plot_statement_auc(table, out_dir / "statement_auc.png")
    for r in table:
        auc = "  n/a" if r["auc"] is None else f"{r['auc']:.3f}"
        print(f"  {auc}  {r['code']:<6} ({r['n_positive']} of {r['n_positive'] + r['n_negative']} test records)")
    print(f"wrote {out_dir / 'statements.json'} and {out_dir / 'statement_auc.png'}")


def write_attention_agreement(out_dir: Path, n_records: int, steps: int, untrained: bool = False) -> None:
    """DIR/attention_agreement.json: attention vs integrated gradients on up to n_records test-fold records (a
    seeded sample), ecgalign.attention.agreement. untrained: the same network freshly initialised (seed 0, the
    trained model's lead normalisation), the level agreement reaches without any training
    (DIR/attention_agreement_untrained.json)."""
    from ecgalign import atomic
    from ecgalign.attention import agreement
    from ecgalign.models import load_model

    records = art.load_reports()
    folds = test_folds()
    rows = np.array([i for i, r in enumerate(records) if r["strat_fold"] in folds])
    if not len(rows):
        raise ProjectError(f"no record of {art.REPORTS} is in the test folds {folds}")
    model = load_model(art.MODEL)
    if model.config["encoder"] != "dual_attention":
        raise ProjectError(f"--attention-agreement: {art.MODEL} holds a {model.config['encoder']} encoder, which "
                           f"has no attention; retrain with ecg.encoder=dual_attention")
    if untrained:
        import torch

        from ecgalign.models import AlignmentModel
        torch.manual_seed(0)
        model = AlignmentModel(model.config, model.lead_mean, model.lead_std).eval()
    if len(rows) > n_records:
        rows = np.sort(np.random.default_rng(0).choice(rows, n_records, replace=False))
    signals = art.load_array(art.SIGNALS_ARRAY, len(records), "signals")
    _, keys = statement_keys(model)
    result = agreement(model, signals, rows, keys, steps=steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"attention_agreement{'_untrained' if untrained else ''}.json"
    atomic.write_json(path, result)
    s, o = result["spearman"], result["top3_overlap"]
    print(f"attention vs integrated gradients, {result['n_records']} test records: Spearman {s['mean']:+.3f} "
          f"[{s['ci_low']:+.3f}, {s['ci_high']:+.3f}] (chance 0), top-3 overlap {o['mean']:.2f} "
          f"[{o['ci_low']:.2f}, {o['ci_high']:.2f}] of 3 (chance {result['top3_overlap_chance']:.2f})")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ecg_ids", type=int, nargs="*", metavar="ECG_ID")
    parser.add_argument("-k", type=int, default=5, help="nearest statements to show (default 5)")
    parser.add_argument("--plot", type=Path, help="write the record's ECG printout to this PNG (one ECG_ID)")
    parser.add_argument("--plot-dir", type=Path, help="write one printout per ECG_ID: DIR/ecg_<id>.png")
    parser.add_argument("--attribution", action="store_true",
                        help="colour the printout by integrated gradients of its top statement's cosine")
    parser.add_argument("--statement", metavar="CODE", help="explain this SCP statement instead (implies "
                                                              "--attribution)")
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradients steps (default 32)")
    parser.add_argument("--batch-size", type=int, default=16, help="IG steps evaluated at once (memory bound)")
    parser.add_argument("--dpi", type=int, default=150, help="printout resolution (default 150)")
    parser.add_argument("--statement-auc", type=Path, metavar="DIR",
                        help="write DIR/statements.json and DIR/statement_auc.png (test-fold AUC per statement)")
    parser.add_argument("--attention", action="store_true",
                        help="dual_attention models: colour the printout by each lead's temporal attention and "
                             "write the 12 x 12 cross-lead map beside it (<plot>_leads.png)")
    parser.add_argument("--attention-agreement", type=Path, metavar="DIR",
                        help="write DIR/attention_agreement.json: rank agreement of attention and integrated "
                             "gradients over the leads, on test-fold records")
    parser.add_argument("--untrained", action="store_true",
                        help="--attention-agreement: for the same network freshly initialised (the reference level)")
    parser.add_argument("--records", type=int, default=300,
                        help="--attention-agreement: test records sampled (default 300)")
    args = parser.parse_args()
    if args.plot and len(args.ecg_ids) != 1:
        parser.error("--plot takes exactly one ECG_ID; use --plot-dir for several")
    if not args.ecg_ids and not (args.statement_auc or args.attention_agreement):
        parser.error("give an ECG_ID (or --statement-auc DIR, --attention-agreement DIR)")
    if args.attention and (args.attribution or args.statement):
        parser.error("--attention and --attribution/--statement colour the same printout: choose one")
    by_id = {r["ecg_id"]: r for r in art.load_reports()}
    for ecg_id in args.ecg_ids:
        if ecg_id not in by_id:
            raise ProjectError(f"ecg_id {ecg_id} is not in {art.REPORTS} "
                             f"({len(by_id)} records, ecg_id {min(by_id)}-{max(by_id)})")
    if args.plot or args.plot_dir:
        paths = [args.plot] if args.plot else [args.plot_dir / f"ecg_{i}.png" for i in args.ecg_ids]
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
        row_of = {ecg_id: row for row, ecg_id in enumerate(by_id)}
        plot_records(args.ecg_ids, paths, by_id, row_of, args.k, args.attribution, args.statement, args.steps,
                     args.batch_size, args.dpi, args.attention)
    else:
        for ecg_id in args.ecg_ids:
            print("\n".join([by_id[ecg_id]["report"], *free_text_lines(by_id[ecg_id])]))
            if art.RECORD_EMBEDDINGS.exists():
                from ecgalign.text import show_latent
                print(show_latent(ecg_id))
            if art.E_ECG.exists():
                from ecgalign.evaluation import format_nearest, nearest_statements
                print(format_nearest(nearest_statements(ecg_id, k=args.k)))
    if args.statement_auc:
        write_statement_auc(args.statement_auc)
    if args.attention_agreement:
        write_attention_agreement(args.attention_agreement, args.records, args.steps, args.untrained)


if __name__ == "__main__":
    from ecgalign.errors import run
    sys.exit(run(main))
