"""The documentation: every relative link of README.md and docs/*.md resolves (file and, into a Markdown page, the
#anchor of one of its headings), every docs page is reachable from the README, and the README stays a front page."""
from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(text: str, code_spans: bool = False) -> str:
    """The text without fenced code blocks and (unless code_spans) inline code spans: links there are not links."""
    out, in_fence = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        out.append("" if in_fence else line if code_spans else re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = text.strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path.read_text(encoding="utf-8"), code_spans=True).split("\n"):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path, root: Path) -> list[str]:
    """Every relative link of one Markdown file that does not resolve, as 'file: target (why)'."""
    bad = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: {target}"
        if not dest.exists():
            bad.append(f"{where} (no such file)")
        elif root.resolve() not in dest.parents and dest != root.resolve():
            bad.append(f"{where} (outside the repository)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{where} (no heading with anchor #{anchor} in {dest.name})")
    return bad


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    assert (REPO / "docs").is_dir()
    bad = [b for p in pages(REPO) for b in broken_links(p, REPO)]
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_every_docs_page_is_linked_from_the_readme():
    readme = prose((REPO / "README.md").read_text(encoding="utf-8"))
    linked = {(REPO / t.partition("#")[0]).resolve() for t in LINK.findall(readme)}
    missing = [p.name for p in sorted((REPO / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs pages without a row in the README's Documentation table: {missing}"


def test_the_readme_stays_a_front_page():
    n = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}): move reference text to docs/"


def test_the_checker_finds_a_missing_file_a_missing_anchor_and_ignores_code(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Data sources (`data.source`)\n\n## Signals\n\n## Signals\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md#data-sources-datasource) [ok2](docs/a.md#signals-1) [web](https://example.org/x#y)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#signal) [self](#nothing)\n"
        "![img](plots/x.png) `[in code](nope.md)`\n```\n[in a fence](nope.md)\n```\n")
    assert broken_links(tmp_path / "README.md", tmp_path) == [
        "README.md: docs/b.md (no such file)",
        "README.md: docs/a.md#signal (no heading with anchor #signal in a.md)",
        "README.md: #nothing (no heading with anchor #nothing in README.md)",
        "README.md: plots/x.png (no such file)"]


def test_slug_matches_github_anchors():
    assert slug("Encoders, losses and training (`ecg.*`, `train.*`, `split.*`)") == \
        "encoders-losses-and-training-ecg-train-split"
    assert slug("Retrieval: what the model beats") == "retrieval-what-the-model-beats"
    assert slug("The 0.0 policy (`text.zero_likelihood`)") == "the-00-policy-textzero_likelihood"


BLOCK = re.compile(r"<!-- results:begin -->(.*?)<!-- results:end -->", re.S)
FIGURE = re.compile(r"(?<![\w.])[+\-−]?(\d+\.\d{3})(?!\d)")
READING = re.compile(r"^(#+) .*\b(says?|in brief)\b.*$", re.M | re.I)
CITED = re.compile(r"`((?:src|docs|bench|tests|results|metrics|\.ci)/[\w./-]*\w|experiments[\w-]*\.yaml|params\.yaml|"
                   r"dvc\.yaml|Makefile|requirements\.txt)`")


def reference_levels(value, key: str = "") -> list[float]:
    """The chance and majority levels of retrieval (keys *_chance_* / *_majority_*) anywhere in a results file."""
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in reference_levels(v, k)]
    if isinstance(value, list):
        return [x for v in value for x in reference_levels(v, key)]
    return [value] if isinstance(value, float) and ("_chance_" in key or "_majority_" in key) else []


def generated_figures(root: Path) -> set[str]:
    """Every figure (three decimals, sign dropped) of the generated results blocks of the README and the docs, and the
    retrieval reference levels (chance, majority) of the grids' collected results, rounded to three decimals."""
    cells = {f for p in pages(root) for block in BLOCK.findall(p.read_text(encoding="utf-8"))
             for f in FIGURE.findall(block)}
    return cells | {f"{x:.3f}" for p in sorted((root / "results").glob("*.json"))
                    for x in reference_levels(json.loads(p.read_text(encoding="utf-8")))}


def readings(text: str) -> str:
    """The sections that read the results in prose ("What the figures say", "Results in brief", ...), each up to the
    next heading of its level or above."""
    parts = []
    for m in READING.finditer(text):
        level = len(m.group(1))
        end = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, m.end())
        parts.append(text[m.end():end.start() if end else len(text)])
    return "".join(parts)


def unsourced_figures(root: Path) -> list[str]:
    """Figures quoted in a reading section that no generated block holds, as 'page: figure'."""
    known = generated_figures(root)
    return [f"{p.name}: {f}" for p in pages(root) for f in FIGURE.findall(readings(p.read_text(encoding="utf-8")))
            if f not in known]


def missing_cited_files(root: Path) -> list[str]:
    """Repository files named in `code` in the README and the docs that do not exist, as 'page: path'."""
    return [f"{p.name}: {c}" for p in pages(root) for c in CITED.findall(p.read_text(encoding="utf-8"))
            if not any(ch in c for ch in "*<{") and not (root / c).exists()]


def test_every_figure_the_readings_quote_is_a_cell_of_a_generated_block():
    bad = unsourced_figures(REPO)
    assert not bad, ("figures in a reading of the results that no generated block holds (quote the block, or "
                     "regenerate it with `make results`):\n" + "\n".join(bad))


def test_every_file_the_readme_and_the_docs_name_exists():
    bad = missing_cited_files(REPO)
    assert not bad, "files named in the README or the docs that do not exist:\n" + "\n".join(bad)


def test_the_figure_checker_finds_a_figure_no_block_holds_and_a_missing_file(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "grid.json").write_text('{"experiments": [{"metrics": {"ecg_to_text_majority_r1": 0.3594,'
                                                    ' "ecg_to_text_r1": 0.777}}]}')
    (tmp_path / "README.md").write_text(
        "# t\n<!-- results:begin -->\n| infonce | 0.860 ± 0.013 | +0.390 [+0.381, +0.400] |\n<!-- results:end -->\n"
        "### What the figures say\nzero-shot 0.860, −0.390 [−0.381, +0.400], majority 0.359, typo 0.861, run 0.777.\n"
        "## Elsewhere\nnot a reading: 0.123, see `src/missing.py` and `results/grid.json`.\n")
    assert unsourced_figures(tmp_path) == ["README.md: 0.861", "README.md: 0.777"]
    assert missing_cited_files(tmp_path) == ["README.md: src/missing.py"]


# --- verdict words: a reading's "supported" / "not supported" / "contradicted" is the claim table's ----------------

CLAIM_ROW = re.compile(r"^\|[^|\n]*\|[^|\n]*\| ([+-]\d+\.\d+) \| \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\] \|.*\| ([^|\n]+) \|$",
                       re.M)
QUOTED_CLAIM = re.compile(r"([+\-−]\d+\.\d{3}) \[([+\-−]\d+\.\d{3}), ([+\-−]\d+\.\d{3})\]")
VERDICT_WORDS = re.compile(r"\b((?:not|neither(?: is)?|none(?: is)?) supported|none survives|no longer pass(?:es)?|"
                           r"not shown|contradicted|supported|undefined)\b", re.I)
SENTENCE_END = re.compile(r"(?<=[.;])\s+(?=[A-Z*(])|\n(?=\s*- )|\n\n")


def verdict_of(words: str) -> str:
    words = words.lower()   # every negated form reads "not supported"
    if words == "contradicted":
        return "contradicted"
    if words in ("supported", "undefined"):
        return words
    return "not supported"


def claim_verdicts(root: Path) -> dict[tuple[str, str, str], set[str]]:
    """(a − b, low, high) of every claim row of the generated blocks -> the verdicts it has there."""
    out: dict[tuple[str, str, str], set[str]] = {}
    for p in pages(root):
        for block in BLOCK.findall(p.read_text(encoding="utf-8")):
            for mean, low, high, verdict in CLAIM_ROW.findall(block):
                v = verdict.strip()
                v = "undefined" if v.startswith("undefined") else "not supported" if v.startswith("not supported") \
                    else v
                out.setdefault((mean, low, high), set()).add(v)
    return out


def wrong_verdicts(root: Path) -> list[str]:
    """Claims quoted in a reading section ("a − b [low, high]", as in a claims table) read with another verdict than
    the claim's in its generated block, as 'page: quote reads X, the block says Y'. A quote's verdict is the first
    verdict word after it in its sentence ("+0.05 [+0.04, +0.06] (supported)"), else the last one before it ("is not
    supported: +0.004 [−0.001, +0.009]"); a sentence without a verdict word is not checked."""
    known = claim_verdicts(root)
    bad = []
    for p in pages(root):
        for sentence in SENTENCE_END.split(readings(p.read_text(encoding="utf-8"))):
            sentence = re.sub(r"\s+", " ", sentence)
            words = [(m.start(), verdict_of(m.group(1))) for m in VERDICT_WORDS.finditer(sentence)]
            if not words:
                continue
            for m in QUOTED_CLAIM.finditer(sentence):
                key = tuple(x.replace("−", "-") for x in m.groups())
                if key not in known:
                    continue
                after = [v for at, v in words if at > m.start()]
                said = after[0] if after else words[-1][1]
                if said not in known[key]:
                    bad.append(f"{p.name}: {m.group(0)} reads '{said}', the block says {sorted(known[key])}")
    return bad


def test_every_verdict_a_reading_gives_a_quoted_claim_is_the_blocks():
    bad = wrong_verdicts(REPO)
    assert not bad, "verdict words that contradict the generated claims tables:\n" + "\n".join(bad)


def test_the_verdict_checker_finds_a_claim_read_with_the_wrong_verdict(tmp_path):
    (tmp_path / "docs").mkdir()
    rows = ("| a beats b (a = a, b = b) | m | +0.165 | [+0.112, +0.218] | [-0.175, +0.505] | 3 | 0.006 | 0.137 | "
            "not supported |\n| c beats b (a = c, b = b) | m | +0.390 | [+0.381, +0.400] | [+0.327, +0.454] | 3 | "
            "<0.001 | 0.001 | supported |\n")
    (tmp_path / "README.md").write_text(
        f"<!-- results:begin -->\n{rows}<!-- results:end -->\n\n### What the figures say\n"
        "- InfoNCE helps the probe: +0.165 [+0.112, +0.218] (supported). Zero-shot +0.390 [+0.381, +0.400] is "
        "supported.\n- Reports lose zero-shot, +0.165 [+0.112, +0.218], not supported after Holm; and +0.390 "
        "[+0.381, +0.400] is contradicted.\n- Not\n  supported: +0.165 [+0.112, +0.218].\n\n### Elsewhere\n"
        "- +0.165 [+0.112, +0.218] supported\n")
    assert wrong_verdicts(tmp_path) == [
        "README.md: +0.165 [+0.112, +0.218] reads 'supported', the block says ['not supported']",
        "README.md: +0.390 [+0.381, +0.400] reads 'contradicted', the block says ['supported']"]
