"""ecgalign.translate: PTB-XL's free-text reports in English. Exact translations of real reports (each checked by
hand against the glossary's clinical meaning), the spelling rules, the drops, unknown words, bad input, and coverage on
the full PTB-XL table."""
import math

import pandas as pd
import pytest

from ecgalign import ptbxl, translate
from ecgalign.errors import ReportError
from ecgalign.reports import add_free_text, build_reports, free_text_lines
from ecgalign.translate import Translator

# (kind of statement, a real report of ptbxl_database.csv as written, its English): distinct reports, hand-checked
REAL = [
    ('rhythm', 'vorhofflimmern/-flattern lagetyp normal 4.46                          unbestÄtigter bericht',
     'atrial fibrillation/flutter normal axis unconfirmed report'),
    ('rhythm', 'sinustachykardie lagetyp normal sonst normales ekg',
     'sinus tachycardia normal axis otherwise normal ecg'),
    ('rhythm', 'sinusbradykardie lagetyp normal sonst normales ekg',
     'sinus bradycardia normal axis otherwise normal ecg'),
    ('rhythm', 'sinus arrhythmie lagetyp normal sonst normales ekg',
     'sinus arrhythmia normal axis otherwise normal ecg'),
    ('rhythm', 'schrittmacher ekg 4.46                          unbestÄtigter bericht',
     'pacemaker ecg unconfirmed report'),
    ('rhythm', 'unregelmÄssiger rhythmus, keine p-welle erkannt vorhofflattern st & t abnormal, mÖglicherweise neuer    inferiorer myokard- oder perikardschaden pathologisch',
     'irregular rhythm, no p wave detected atrial flutter abnormal st-t, possibly new inferior myocardial or pericardial injury abnormal'),
    ('rhythm', 'supraventrikulÄre extrasystole(n) sinusrhythmus lagetyp normal sonst normales ekg 4.46                          unbestÄtigter bericht',
     'supraventricular extrasystole(s) sinus rhythm normal axis otherwise normal ecg unconfirmed report'),
    ('rhythm', 'ventrikulÄre extrasystole(n), bigeminus sinus arrhythmie lagetyp normal 4.46                          unbestÄtigter bericht',
     'ventricular extrasystole(s), bigeminy sinus arrhythmia normal axis unconfirmed report'),
    ('rhythm', 'av-knotenrhythmus lagetyp normal 4.46                          unbestÄtigter bericht',
     'av nodal rhythm normal axis unconfirmed report'),
    ('rhythm', 'tachykardes vorhofflimmern lagetyp normal st & t abnorm, wahrscheinlich    anterolaterale ischÄmie oder linksbelastung    inferolaterale ischÄmie oder linksbelastung 4.46                          unbestÄtigter bericht',
     'atrial fibrillation with rapid ventricular response normal axis abnormal st-t, probable anterolateral ischaemia or left ventricular strain inferolateral ischaemia or left ventricular strain unconfirmed report'),
    ('axis', 'sinusrhythmus ueberdrehter linkstyp',
     'sinus rhythm left axis deviation'),
    ('axis', 'sinusrhythmus rechtstyp sonst normales ekg',
     'sinus rhythm right axis otherwise normal ecg'),
    ('axis', 'sinusrhythmus steiltyp normales ekg',
     'sinus rhythm vertical axis normal ecg'),
    ('axis', 'sinusrhythmus linkstyp sonst normales ekg',
     'sinus rhythm left axis otherwise normal ecg'),
    ('axis', 'sinusrhythmus linkstyp sonst normales ekg 4.46                          unbestÄtigter bericht',
     'sinus rhythm left axis otherwise normal ecg unconfirmed report'),
    ('axis', 'sinusrhythmus schwierig bestimmbare qrs-achse',
     'sinus rhythm indeterminate qrs axis'),
    ('axis', 'sinusrytm vÄnster el-axel eljest normalt ekg',
     'sinus rhythm left axis deviation otherwise normal ecg'),
    ('infarction', 'sinusrhythmus lagetyp normal qrs(t) abnorm    inferiorer infarkt     alter unbest. 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis abnormal qrs(t) inferior infarction, age undetermined unconfirmed report'),
    ('infarction', 'sinusrhythmus lagetyp normal qrs(t) abnorm    anteroseptaler infarkt     wahrscheinlich alt 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis abnormal qrs(t) anteroseptal infarction, probably old unconfirmed report'),
    ('infarction', 'sinusrhythmus lagetyp normal qrs(t) abnormal    hochlateraler infarkt mÖglich',
     'sinus rhythm normal axis abnormal qrs(t) high lateral infarction, possible'),
    ('infarction', 'sinusrhythmus lagetyp normal qrs(t) abnorm    anteriorer infarkt     alter unbest. 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis abnormal qrs(t) anterior infarction, age undetermined unconfirmed report'),
    ('infarction', 'sinusrhythmus lagetyp normal qrs(t) abnorm    inferiorer infarkt     wahrscheinlich alt 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis abnormal qrs(t) inferior infarction, probably old unconfirmed report'),
    ('infarction', 'sinusrhythmus linkstyp qrs(t) abnorm    inferiorer infarkt     alter unbest. 4.46                          unbestÄtigter bericht',
     'sinus rhythm left axis abnormal qrs(t) inferior infarction, age undetermined unconfirmed report'),
    ('infarction', 'sinusrhythmus lagetyp normal qrs(t) abnorm    inferiorer myokardschaden mÖglich 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis abnormal qrs(t) inferior myocardial damage, possible unconfirmed report'),
    ('infarction', 'sinusrhythmus mÖglicherweise wpw typ b ueberdrehter linkstyp qrs(t) abnorm    inferiorer infarkt     mÖgl. akut st abnorm, mÖglicherweise    hochlateraler innenschichtsschaden 4.46                          unbestÄtigter bericht',
     'sinus rhythm possibly wpw type b left axis deviation abnormal qrs(t) inferior infarction, possibly acute abnormal st, possibly high lateral subendocardial injury unconfirmed report'),
    ('hypertrophy', 'sinusrhythmus lagetyp normal mÄssige amplitudenkriterien fÜr linkshypertrophie 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis moderate voltage criteria for left ventricular hypertrophy unconfirmed report'),
    ('hypertrophy', 'sinusrhythmus linkstyp mÄssige amplitudenkriterien fÜr linkshypertrophie 4.46                          unbestÄtigter bericht',
     'sinus rhythm left axis moderate voltage criteria for left ventricular hypertrophy unconfirmed report'),
    ('hypertrophy', 'sinusrhythmus p-dextrocardiale ueberdrehter rechtstyp r-s Übergang in v ableitungen nach rechts verschoben linksposteriorer hemiblock rechtshypertrophie mÖglich qrs(t) abnorm    inferiorer infarkt     alter unbest. 4.46                          unbestÄtig',
     'sinus rhythm right atrial enlargement right axis deviation r-s transition zone in v leads displaced to the right left posterior fascicular block right ventricular hypertrophy, possible abnormal qrs(t) inferior infarction, age undetermined unconfirmed'),
    ('hypertrophy', 'sinusrhythmus verdacht auf p-sinistrocardiale lagetyp normal',
     'sinus rhythm suspected left atrial enlargement normal axis'),
    ('hypertrophy', 'sinusrytm vÄnster kammarhypertrofi',
     'sinus rhythm left ventricular hypertrophy'),
    ('conduction', 'sinusrhythmus lagetyp normal unvollstÄndiger rechtsschenkelblock sonst normales ekg',
     'sinus rhythm normal axis incomplete right bundle branch block otherwise normal ecg'),
    ('conduction', 'sinusrhythmus linkstyp linksschenkelblock linkshypertrophie mÖglich 4.46                          unbestÄtigter bericht',
     'sinus rhythm left axis left bundle branch block left ventricular hypertrophy, possible unconfirmed report'),
    ('conduction', 'sinusrhythmus ueberdrehter linkstyp linksanteriorer hemiblock 4.46                          unbestÄtigter bericht',
     'sinus rhythm left axis deviation left anterior fascicular block unconfirmed report'),
    ('conduction', 'sinusrhythmus a-v block i lagetyp normal 4.46                          unbestÄtigter bericht',
     'sinus rhythm first degree av block normal axis unconfirmed report'),
    ('conduction', 'sinusrhythmus ueberdrehter linkstyp linksanteriorer hemiblock rechtsschenkelblock bifaszikulÄrer block 4.46                          unbestÄtigter bericht',
     'sinus rhythm left axis deviation left anterior fascicular block right bundle branch block bifascicular block unconfirmed report'),
    ('conduction', 'sinusrhythmus lagetyp normal unspezifische intraventrikulÄre leitungsstÖrung 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis non-specific intraventricular conduction disturbance unconfirmed report'),
    ('conduction', 'sinusrytm extrem vÄnster el-axel vÄnstersidigt skÄnkelblock',
     'sinus rhythm extreme left axis deviation left bundle branch block'),
    ('conduction', 'sinusrhythmus mÖglicherweise wpw typ b ueberdrehter linkstyp qrs(t) abnorm    anterolateraler infarkt     wahrscheinlich alt    inferiorer infarkt     mÖgl. akut 4.46                          unbestÄtigter bericht',
     'sinus rhythm possibly wpw type b left axis deviation abnormal qrs(t) anterolateral infarction, probably old inferior infarction, possibly acute unconfirmed report'),
    ('stt', 'sinusrhythmus lagetyp normal unspezifische abnorme st-senkung 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis non-specific abnormal st depression unconfirmed report'),
    ('stt', 'sinusrhythmus lagetyp normal st-hebung in v1-v3 normales ekg',
     'sinus rhythm normal axis st elevation in v1-v3 normal ecg'),
    ('stt', 'sinusrhythmus lagetyp normal st & t abnorm, wahrscheinlich    anterolaterale ischÄmie oder linksbelastung    inferolaterale ischÄmie oder linksbelastung 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis abnormal st-t, probable anterolateral ischaemia or left ventricular strain inferolateral ischaemia or left ventricular strain unconfirmed report'),
    ('stt', 'vorhofflimmern/-flattern lagetyp normal st & t abnorm, wahrscheinlich    anterolaterale ischÄmie oder linksbelastung    inferolaterale ischÄmie oder linksbelastung 4.46                          unbestÄtigter bericht',
     'atrial fibrillation/flutter normal axis abnormal st-t, probable anterolateral ischaemia or left ventricular strain inferolateral ischaemia or left ventricular strain unconfirmed report'),
    ('stt', 'sinusrhythmus lagetyp normal unspezifisches abnormes t qt-verlÄngerung 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis non-specific t wave abnormality qt prolongation unconfirmed report'),
    ('stt', 'sinusrhythmus lagetyp normal t abnorm in hochlateralen ableitungen 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis abnormal t waves in high lateral leads unconfirmed report'),
    ('stt', 'sinusrhythmus lagetyp normal t neg in iii',
     'sinus rhythm normal axis negative t waves in iii'),
    ('stt', 'sinusrytm st-t sÄnkning, sÅsom vid    anterolateral ischemi eller vÄnster belastning    inferolateral ischemi eller vÄnster belastning',
     'sinus rhythm st-t depression, consistent with anterolateral ischaemia or left ventricular strain inferolateral ischaemia or left ventricular strain'),
    ('repol', 'sinusrhythmus lagetyp normal path. repolarisation wahrscheinlich normal',
     'sinus rhythm normal axis abnormal repolarisation probably normal'),
    ('repol', 'sinusrhythmus lagetyp normal st & t abnorm, wahrscheinlich    anterolaterale ischÄmie oder linksbelastung 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis abnormal st-t, probable anterolateral ischaemia or left ventricular strain unconfirmed report'),
    ('repol', 'sinusrhythmus lagetyp normal qt-verlÄngerung',
     'sinus rhythm normal axis qt prolongation'),
    ('repol', 'sinusrhythmus lagetyp normal periphere niederspannung',
     'sinus rhythm normal axis low limb lead voltage'),
    ('repol', 'tachykardes vorhofflimmern lagetyp normal schlechte r-progression pathologisch',
     'atrial fibrillation with rapid ventricular response normal axis poor r progression abnormal'),
    ('repol', 'sinusrhythmus lagetyp normal r-s Übergang in v ableitungen nach rechts verschoben sonst normales ekg 4.46                          unbestÄtigter bericht',
     'sinus rhythm normal axis r-s transition zone in v leads displaced to the right otherwise normal ecg unconfirmed report'),
    ('repol', 'sinusrhythmus lagetyp normal amplitudenkriterien f#r linkshypertrophie',
     'sinus rhythm normal axis voltage criteria for left ventricular hypertrophy'),
    ('repol', 'sinusrhythmus mÄssige amplitudenkriterien f#r linkshypertrophie',
     'sinus rhythm moderate voltage criteria for left ventricular hypertrophy'),
]

# real English reports of the table: unchanged apart from lower case and collapsed white space
ENGLISH = [
    "sinus rhythm. normal ecg.",
    "sinus rhythm. st segments are depressed in i, avl, v5,6. non-specific but consistent with myocardial ischaemia.",
    "premature atrial contraction(s). sinus rhythm. left axis deviation. left ventricular hypertrophy. st segments are "
    "depressed in i, avl, v4,5,6. t waves are flat in i and inverted in avl, v4,5,6. this may be due to lv strain or "
    "ischaemia.",
    "sinus rhythm. qt prolongation is less than on 11:7:92. prominent u wave. suggest exclude hypokalaemia. otherwise "
    "normal ecg.",
    "atrial fibrillation with rapid ventricular response. low limb lead voltage. st segments are depressed in ii, "
    "v2-6. findings are likely to be due to ischaemic heart disease.",
]


@pytest.fixture(scope="module")
def tr():
    return Translator()


def test_at_least_50_distinct_real_reports_over_every_kind_of_statement():
    assert len({g for _, g, _ in REAL}) == len(REAL) >= 50
    assert {k for k, _, _ in REAL} == {"rhythm", "axis", "infarction", "hypertrophy", "conduction", "stt", "repol"}


@pytest.mark.parametrize("kind, german, english", REAL, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(REAL)])
def test_real_reports_translate_exactly(tr, kind, german, english):
    t = tr.translate(german)
    assert t.text == english
    assert not t.unknown and t.translated > 0


def test_real_reports_are_in_the_table(ptbxl_metadata):
    table = set(pd.read_csv(ptbxl_metadata / "ptbxl_database.csv", usecols=["report"])["report"])
    assert [g for _, g, _ in REAL if g not in table] == []
    normalised = {translate.normalise(t) for t in table}
    assert [e for e in ENGLISH if e not in normalised] == []


@pytest.mark.parametrize("report", ENGLISH)
def test_english_passes_through_unchanged(tr, report):
    t = tr.translate(report.upper().replace(" ", "   "))
    assert t.text == report and t.translated == 0 and not t.unknown and t.english == t.n_words > 0


def test_machine_phrases_and_word_order(tr):
    assert tr.translate("unbestätigter bericht").text == "unconfirmed report"
    assert tr.translate("lagetyp normal").text == "normal axis"
    assert tr.translate("qrs(t) abnorm").text == "abnormal qrs(t)"
    assert tr.translate("inferiorer infarkt alter unbest.").text == "inferior infarction, age undetermined"


@pytest.mark.parametrize("spelling", ["überdrehter linkstyp", "ueberdrehter linkstyp", "ÜBERDREHTER LINKSTYP",
                                      "UEBERDREHTER    linkstyp"])
def test_umlauts_and_their_written_out_forms_are_one_word(tr, spelling):
    assert tr.translate(spelling).text == "left axis deviation"


def test_a_hash_for_a_lost_umlaut(tr):
    # PTB-XL has "f#r" (für) and "#bergang" (Übergang)
    assert tr.translate("mässige amplitudenkriterien f#r linkshypertrophie").text == \
        "moderate voltage criteria for left ventricular hypertrophy"
    assert tr.translate("#bergang").text == "transition"


def test_abbreviations_with_dots(tr):
    assert tr.translate("sinusrhythmus linkstyp st.n. inferiorem infarkt").text == \
        "sinus rhythm left axis status post inferior infarction"
    assert tr.translate("anteroseptaler infarkt mögl. akut").text == "anteroseptal infarction, possibly acute"
    # the dot of an abbreviation is part of it; a sentence's dot is punctuation
    assert tr.translate("path. repolarisation.").text == "abnormal repolarisation."


def test_lead_lists_are_kept_as_written(tr):
    t = tr.translate("st-senkung in v4,5,6 st-hebung in v3-4-5-6 t neg in i, avl, v5,6.")
    assert t.text == "st depression in v4,5,6 st elevation in v3-4-5-6 negative t waves in i, avl, v5,6."
    assert not t.unknown


def test_version_tag_dropped_other_numbers_kept(tr):
    t = tr.translate("sinusrhythmus 4.46 unbestätigter bericht")
    assert t.text == "sinus rhythm unconfirmed report" and t.version_tags == 1
    t = tr.translate("tachykardie hf 190 !!!")
    assert t.text == "tachycardia heart rate 190!!!" and t.version_tags == 0


def test_edit_annotation_dropped_and_counted(tr):
    t = tr.translate("sinusrhythmus normales ekg Edit: NORM 100, keine Ischämie(NORM 100)")
    assert t.text == "sinus rhythm normal ecg"
    assert t.dropped == 5 and t.translated == 3 and t.n_words == 8   # edit norm keine ischämie norm


def test_unknown_words_are_kept_and_counted(tr):
    t = tr.translate("sinusrhythmus blubberwort lagetyp normal blubberwort")
    assert t.text == "sinus rhythm blubberwort normal axis blubberwort"
    assert t.unknown == {"blubberwort": 2} and t.translated == 3
    m = translate.coverage([t, tr.translate("sinus rhythm.")])
    assert m["n_word_tokens"] == 7 and m["share_unknown"] == round(2 / 7, 6) and m["share_english"] == round(2 / 7, 6)
    assert m["top_unknown"] == [["blubberwort", 2]]


def test_swedish(tr):
    assert tr.translate("sinusrytm vÄnster el-axel intraventrikulÄrt retledningshinder").text == \
        "sinus rhythm left axis deviation intraventricular conduction delay"


# bad input -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("report, n_words, version_tags", [("", 0, 0), ("   ", 0, 0), ("4.46", 0, 1),
                                                             ("100 200, 3", 0, 0)])
def test_reports_without_words_translate_to_nothing_but_numbers(tr, report, n_words, version_tags):
    t = tr.translate(report)
    assert t.n_words == n_words and t.version_tags == version_tags and not t.unknown


@pytest.mark.parametrize("report, message", [
    (None, "report is NoneType, not text"),
    (float("nan"), "report is float, not text"),
    (b"sinusrhythmus \xe4", "report is not UTF-8 text (byte 0xe4 at offset 14)"),
])
def test_reports_that_are_not_text_raise(tr, report, message):
    with pytest.raises(ReportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tr.translate(report)


def test_utf8_bytes_are_text(tr):
    assert tr.translate("sinusrhythmus überdrehter linkstyp".encode()).text == "sinus rhythm left axis deviation"


def _table(reports):
    return pd.DataFrame({"ecg_id": range(1, len(reports) + 1), "report": reports})


def test_free_text_fallbacks_are_counted_not_fatal(tr):
    records = [{"ecg_id": i} for i in (1, 2, 3, 4)]
    out = add_free_text(records, _table(["sinusrhythmus normales ekg", math.nan, "4.46", "  "]), tr)
    assert [(r["report_de"], r["report_en"]) for r in records] == [
        ("sinusrhythmus normales ekg", "sinus rhythm normal ecg"), ("", ""), ("4.46", ""), ("  ", "")]
    assert [t.n_words for t in out] == [3, 0, 0, 0]
    assert free_text_lines(records[0]) == ["Free-text report (original): sinusrhythmus normales ekg",
                                           "Free-text report (English):  sinus rhythm normal ecg"]
    assert free_text_lines(records[1])[1] == "Free-text report (English):  (none)"
    assert free_text_lines({"ecg_id": 1, "report": "x"}) == []


def test_free_text_without_a_report_column(tr):
    records = [{"ecg_id": 1}]
    add_free_text(records, pd.DataFrame({"ecg_id": [1]}), tr)
    assert records == [{"ecg_id": 1, "report_de": "", "report_en": ""}]


def test_free_text_bad_bytes_name_the_record(tr):
    with pytest.raises(ReportError, match=r"ecg_id 2: report: report is not UTF-8 text"):
        add_free_text([{"ecg_id": 1}, {"ecg_id": 2}], _table(["sinus rhythm.", b"\xff\xfe"]), tr)


def test_a_non_utf8_table_is_one_clear_error(tmp_path, ptbxl_mini):
    raw = (ptbxl_mini / "ptbxl_database.csv").read_bytes()
    (tmp_path / "ptbxl_database.csv").write_bytes(raw.replace(b"sinusrhythmus", b"sinusrhythmus \xe4", 1))
    with pytest.raises(ptbxl.DataError, match="not UTF-8 text"):
        ptbxl.read_database(tmp_path)


# the phrase table ----------------------------------------------------------------------------------------------------

def test_glossary_is_package_data():
    from importlib import resources
    assert resources.files("ecgalign").joinpath("data", translate.GLOSSARY).is_file()
    table, longest, dotted = translate.load_glossary()
    assert len(table) > 1000 and longest >= 5 and "unbest." in dotted


@pytest.mark.parametrize("text, message", [
    ("a\tb\nA\tc\n", "line 2: phrase 'A' is listed twice"),
    ("ä\tb\nae\tc\n", "line 2: phrase 'ae' is listed twice"),
    ("just a phrase\n", "line 1: 'just a phrase' is not `phrase<TAB>english`"),
])
def test_glossary_errors(text, message):
    with pytest.raises(ValueError, match=message):
        translate.load_glossary(text)


# the full table ------------------------------------------------------------------------------------------------------

def test_coverage_on_the_full_table(ptbxl_metadata):
    db = ptbxl.read_database(ptbxl_metadata)
    records, _ = build_reports(db, ptbxl.read_statements(ptbxl_metadata))
    tr = Translator()
    out = add_free_text(records, db, tr)
    m = translate.coverage(out)
    assert len(records) == 21837 and len({r["report_de"] for r in records}) == 9883
    assert m["n_word_tokens"] == 247202 and m["n_version_tags_dropped"] == 7062
    assert m["share_unknown"] <= 0.005, m["top_unknown"][:20]
    assert m["share_translated"] > 0.5 and m["share_english"] > 0.4
    # unknown words are real leftovers (typos, cut-off words), never entries of the table
    assert all((translate.fold(w),) not in tr.table for w, _ in m["top_unknown"])
    assert sum(not r["report_en"] for r in records) == 2


# the reports stage -------------------------------------------------------------------------------------------------

def test_reports_stage_counts_bad_free_text_and_writes_coverage(tmp_path, fault_cache):
    """build_reports.py on the fault matrix's synthetic workspace with German, empty, numbers-only and unknown-word
    reports: it runs, writes report_de/report_en, and metrics/reports.json counts every case."""
    import contextlib
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO
    from faults import Workspace, make_workspace
    path = make_workspace(tmp_path / "ws", fault_cache, "raw")
    with contextlib.ExitStack() as stack:
        ws = Workspace(path, stack)
        for ecg_id, report in [(1, "sinusrhythmus lagetyp normal normales ekg 4.46  unbestätigter bericht"),
                               (2, ""), (3, "4.46"), (4, "sinusrhythmus blubberwort")]:
            ws.set_cell(ecg_id, "report", report)
    proc = subprocess.run([sys.executable, str(REPO / "src" / "build_reports.py")], cwd=path, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (path / "data/reports.jsonl").read_text().splitlines()]
    assert [(r["report_de"], r["report_en"]) for r in rows[:4]] == [
        ("sinusrhythmus lagetyp normal normales ekg 4.46  unbestätigter bericht",
         "sinus rhythm normal axis normal ecg unconfirmed report"),
        ("", ""), ("4.46", ""), ("sinusrhythmus blubberwort", "sinus rhythm blubberwort")]
    assert list(rows[0])[-3:] == ["report", "report_de", "report_en"]
    free = json.loads((path / "metrics/reports.json").read_text())["free_text"]
    assert (free["n_missing"], free["n_without_words"], free["n_version_tags_dropped"]) == (1, 1, 2)
    assert free["top_unknown"] == [["blubberwort", 1]]
    n = free["n_word_tokens"]
    assert free["share_unknown"] == round(1 / n, 6)
    # translated: 7 words of record 1 (sinusrhythmus, lagetyp normal, normales ekg, unbestätigter bericht) + 1 of 4;
    # the other 36 synthetic reports are English
    assert free["share_translated"] == round(8 / n, 6) and free["share_english"] == round((n - 9) / n, 6)
    assert "commonest unknown words: blubberwort (1)" in proc.stdout
