"""Shared fixtures. Tests are offline: the Hugging Face Hub is never contacted."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PTBXL_MINI = SHARED / "ptbxl-mini"
PTBXL_METADATA = SHARED / "ptbxl-metadata"


@pytest.fixture(scope="session")
def ptbxl_mini() -> Path:
    if not (PTBXL_MINI / "ptbxl_database.csv").exists():
        pytest.skip(f"{PTBXL_MINI} is absent: the real PTB-XL slice lives in ../shared beside the repository")
    return PTBXL_MINI


@pytest.fixture(scope="session")
def ptbxl_metadata() -> Path:
    if not (PTBXL_METADATA / "ptbxl_database.csv").exists():
        pytest.skip(f"{PTBXL_METADATA} is absent: the full PTB-XL label table lives in ../shared")
    return PTBXL_METADATA


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory) -> Path:
    """A tiny random BERT with a real WordPiece tokenizer, saved with save_pretrained: loads offline like any model."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = ("ecg normal abnormal sinus rhythm myocardial infarction inferior anterior left right bundle branch "
             "block ventricular hypertrophy atrial fibrillation st t wave changes low high qrs voltage in the and "
             "of leads , : ( ) / - degree first av conduction ischemic tachycardia bradycardia").split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words)) + list("abcdefghijklmnopqrstuvwxyz")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"))
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    import torch
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def fault_cache(tmp_path_factory):
    """Where the fault matrix's base workspace (tests/faults.py: 40 synthetic records through download, reports and
    signals) is built once per session."""
    return tmp_path_factory.mktemp("fault-base")


def run(cmd, cwd, env, timeout=900) -> str:
    """A command that must succeed; its stdout then stderr."""
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def make_repo(root: Path, text_model: Path, epochs: int) -> dict:
    """A fresh git + DVC repository at root with the project's files and small params (200 synthetic records, the
    tiny text model, `epochs` epochs), committed; returns the environment to run git/dvc in it."""
    import yaml

    for name in ("src", "dvc.yaml", "params.yaml", ".gitignore"):
        src = REPO / name
        (shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
         if src.is_dir() else shutil.copy(src, root / name))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["synthetic_records"] = 200
    params["text"]["model"] = str(text_model)
    params["train"].update(epochs=epochs, batch_size=32)
    params["ecg"]["embed_dim"] = 32
    params["finetune"].update(max_epochs=2, lr_grid=[0.001])   # the finetune stage runs, briefly
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", HF_HUB_OFFLINE="1",
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run(cmd, root, env)
    return env
