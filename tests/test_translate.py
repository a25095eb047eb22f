"""ecgalign.translate: PTB-XL's free-text reports in English. Exact translations of real reports (each checked by
hand against the glossary's clinical meaning), the spelling rules, the drops, unknown words, bad input, and coverage on
the full PTB-XL table."""
import math
import re

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

# (ecg_id, a real report of ptbxl_database.csv as written, its English): reports that an earlier table got wrong in
# meaning, each checked by hand. "ob" is "o.B." (ohne Befund), "es" is Extrasystolen, "belastung" alone is the exercise
# test, "hgersidigt" is a mis-encoded "högersidigt" (right), and a word broken across a line with "- " is one word.
CORRECTED = [
    # ob: all 7 reports of the table that have it mean "o.B."
    (1481, 'sinusrhythmus ob', 'sinus rhythm unremarkable'),
    (9410, 'sinusrhythmus qrs(t) abnormal fehlendes r in v2 sonst ob',
     'sinus rhythm abnormal qrs(t) absent r in v2 otherwise unremarkable'),
    (13472, 'sinusrhythmus schulterartige st-hebung v3 sonst ob',
     'sinus rhythm shoulder-like st elevation v3 otherwise unremarkable'),
    (71, 'sinusrhythmus normales ekg ergo:  225 watt  ob  insbes. kein neg  t Über der brustwand.',
     'sinus rhythm normal ecg exercise test: 225 watt unremarkable in particular no negative t over the chest wall.'),
    # es: Extrasystolen, after "ventr.", "supraventr.", "vorhof(s)", "ventrikuläre(n)", and in "sv-es"
    (1729, 'sinusrhythmus lagetyp normal qrs(t) abnormal vorhof es st & t abnormal, wahrscheinlich    anterolaterale '
           'ischÄmie oder linksbelastung pathologisch',
     'sinus rhythm normal axis abnormal qrs(t) atrial extrasystoles abnormal st-t, probable anterolateral ischaemia or '
     'left ventricular strain abnormal'),
    (4916, 'vorhofflimmern normokard llt uniforme ventr.es  lvh sicher st-senkung v5,v6 pathologisches ekg',
     'atrial fibrillation normocardic left axis uniform ventricular extrasystoles lvh definite st depression v5,v6 '
     'abnormal ecg'),
    (14205, 'sinusrhythmus slt supraventr. es: vorhofs-es u-welle v2-5 wahrscheinlich normales ekg',
     'sinus rhythm vertical axis supraventricular extrasystoles: atrial extrasystoles u wave v2-5 probable normal ecg'),
    (12028, 'supraventrikulÄre extrasystole(n) vorhofs - es sinusrhythmus lagetyp normal intraventr. leitungsstoerung '
            'iii, f                     t- veraenderungen hoch in v2, v3, flach in v1           verglichen mit ekg vom '
            '18.4.93: ventr.es (einzelne ) ekg pathologis',
     'supraventricular extrasystole(s) atrial extrasystoles sinus rhythm normal axis intraventricular conduction '
     'disturbance iii, f t wave changes high in v2, v3, flat in v1 compared with ecg from 18.4.93: ventricular '
     'extrasystoles (isolated) ecg abnormal'),
    (16887, 'sinustachykardie linkstyp ventrikulaere es uniform > 5 / min schenkelblock links anteriorer hemiblock '
            'intraventr. leitungsstoerung iii,l,f ekg pathologisch',
     'sinus tachycardia left axis ventricular extrasystoles uniform > 5 / min bundle branch block left anterior '
     'fascicular block intraventricular conduction disturbance iii, l, f abnormal ecg'),
    (13335, 'sinusbradykardie llt sv-es st-hebung in v1-3 grenzwertiger av-block 1 mangelhafte r-progression in v1-3 '
            'grenzbefund',
     'sinus bradycardia left axis supraventricular extrasystoles st elevation in v1-3 borderline av block 1 poor r '
     'progression in v1-3 borderline ecg'),
    (10360, 'multiforme ventrikulÄre extrasystolen   2er salven, bigeminus vollstÄndiger rechts schenkelblock sagitaltyp',
     'multiform ventricular extrasystoles 2 beat salvos, bigeminy complete right bundle branch block sagittal axis'),
    # belastung: the exercise test; a heart's strain is a compound (rechtsherzbelastung)
    (18868, 'ruhe-ekg zur belastung: normal belastung normal',
     'resting ecg for the exercise test: normal exercise normal'),
    (19948, 'ruhe-ekg zur belastung: normal belastungs-ekg : normal',
     'resting ecg for the exercise test: normal exercise ecg: normal'),
    (8140, 'ruhe-ekg zur ergometrie: normales ekg normales ekg unter belastung maximale belastung '
           'soll-arbeitskapazitÄt Überschritten',
     'resting ecg for the exercise test: normal ecg normal ecg during exercise maximal exercise target work capacity '
     'exceeded'),
    (12131, 'ruhe-ekg zur ergometrie: mlt, biphasische t Über inferior und gesamter vorder- wand. abwechselnd zeigt sich '
            'ein totaler lsb. (sitzend) keine belastung.',
     'resting ecg for the exercise test: left axis, biphasic t over inferior and entire anterior wall. alternating '
     'shows a complete left bundle branch block. (sitting) no exercise.'),
    (5334, 'sinusrhythmus linkslagetyp, uebergangszone verschoben nach rechts v2 av-block 1. grades vorhofsÜberelastung '
           'rechts mÖglich st-senkung ii,iii,avf,v4-5 t-verÄnderungen neg v1-6 pathologisches ekg periphere low-voltage '
           'rechtsherzbelastung',
     'sinus rhythm left axis, transition zone displaced after right v2 av block 1. degree atrial overload right '
     'possible st depression ii, iii, avf, v4-5 t wave changes negative v1-6 abnormal ecg peripheral low voltage right '
     'heart strain'),
    # Swedish sides: höger / högersidigt (also mis-encoded "hgersidigt") right, vänster / vänstersidigt left
    (507, 'sinusbradykardi inkomplett hgersidigt skÄnkelblock patologisk q-vÅg i avl, sÅsom vid  gammal hÖg lateral '
          'myokardskada.',
     'sinus bradycardia incomplete right bundle branch block abnormal q wave i avl, consistent with old high lateral '
     'myocardial injury.'),
    (3889, 'sinusrytm hÖger el-axel vÄnstersidigt skÄnkelblock',
     'sinus rhythm right axis deviation left bundle branch block'),
    (192, 'sinusrytm hÖgersidigt skÄnkelblock', 'sinus rhythm right bundle branch block'),
    (11897, 'sinusrytm lÄtt vÄnsterstÄlld el-axel inkomplett hÖgersidigt skÄnkelblock',
     'sinus rhythm slight left axis deviation incomplete right bundle branch block'),
    # lungenembolie, leicht, starre
    (9310, 'sinusrhythmus mittellagetyp intraventr. leitungsstÖrung in iii normales ekg siqiii-typ (verdacht auf '
           'periphere lungenembolie)',
     'sinus rhythm normal axis intraventricular conduction disturbance in iii normal ecg siqiii pattern (suspected '
     'peripheral pulmonary embolism)'),
    (9573, 'supraventrikulÄre extrasystole(n) sinusrhythmus ueberdrehter linkstyp linksanteriorer hemiblock '
           'linkshypertrophie mÖglich intraventr. leitungsstÖrung in iii,avl st-hebung in v1-v3 leicht verzÖgerte '
           'r-progression in v1-v3, lah path. ekg',
     'supraventricular extrasystole(s) sinus rhythm left axis deviation left anterior fascicular block left '
     'ventricular hypertrophy, possible intraventricular conduction disturbance in iii, avl st elevation in v1-v3 '
     'slightly delayed r progression in v1-v3, left anterior fascicular block abnormal ecg'),
    (8212, 'sinusrhythmus llt starre st: i,iii,avl,avf t-veraenderungen: neg. in v4-6 inferior                   '
           'abgeflacht in v2,3 pathologisches ekg',
     'sinus rhythm left axis rigid st: i, iii, avl, avf t wave changes: negative. in v4-6 inferior flattened in v2,3 '
     'abnormal ecg'),
    # words broken across a line: joined ("extre- mitätenableitungen", "kammar- belastning") or closed on their
    # hyphen ("t- veraenderungen", "vorhofs- es"); a suspended compound ("myokard- oder") stays
    (19204, 'sinusrhythmus lagetyp normal periphere niederspannung t biphasisch in v1-4, biphasisch bis flach in extre- '
            'mitÄtenableitungen qt verlÄngert (0,44-0,52)',
     'sinus rhythm normal axis low limb lead voltage t biphasic in v1-4, biphasic to flat in limb leads qt prolonged '
     '(0,44 - 0,52)'),
    (1457, 'sinusrytm gammal inferior infarkt lÄtta st-t fÖrÄndringar anterolateralt sÅsom vid ischemi eller vÄnster '
           'kammar- belastning.',
     'sinus rhythm old inferior infarction slight st-t changes anterolateral consistent with ischaemia or left '
     'ventricular strain.'),
    (2582, 'sinusrytm a-v block i extrem vÄnster el-axel sÅsom vid vÄnster frÄmre hemiblock gammal anteroseptal infarkt '
           'och hÖg lateral infarkt t-fÖrÄndringar anteriort sÅsom vid subendo- kardiell myokardaffektion, troligen '
           'fÄrsk! st-t fÖrÄndringar lateralt sÅsom vid',
     'sinus rhythm first degree av block extreme left axis deviation consistent with left anterior fascicular block '
     'old anteroseptal infarction and high lateral infarction t wave changes anterior consistent with subendocardial '
     'myocardial involvement, probably recent! st-t changes lateral consistent with'),
    (20081, 'sinusrhythmus ueberdrehter linkstyp niederspannungs-ekg av-block 1.grades chron. inferiorer infarkt mÖglich '
            'v4-elektrode rechtsprÄkordial: qs spricht fÜr durch- gemachten rechtsherzinfarkt',
     'sinus rhythm left axis deviation low voltage ecg first degree av block chronic inferior infarction, possible '
     'v4 - electrode right precordial: qs suggests previous right ventricular infarction'),
    (3554, 'sinusrhythmus lagetyp normal t- veraenderungen hoch v2, v3 ekg normal',
     'sinus rhythm normal axis t wave changes high v2, v3 ecg normal'),
    (2718, 'supraventr. extrasystolen vorhofs- es                   intraventr. leitungsstoerung i, ii, g, r           '
           '     sinusrhythmus t- veraenderungen flach in iii                          linkstyp grenzbefund',
     'supraventricular extrasystoles atrial extrasystoles intraventricular conduction disturbance i, ii, g, r sinus '
     'rhythm t wave changes flat in iii left axis borderline ecg'),
    (800, 'unregelmÄssiger rhythmus, keine p-welle erkannt vorhofflattern st & t abnormal, mÖglicherweise neuer    '
          'inferiorer myokard- oder perikardschaden pathologisch',
     'irregular rhythm, no p wave detected atrial flutter abnormal st-t, possibly new inferior myocardial or '
     'pericardial injury abnormal'),
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


# reports an earlier table got wrong in meaning -----------------------------------------------------------------------

@pytest.mark.parametrize("ecg_id, german, english", CORRECTED, ids=[str(i) for i, _, _ in CORRECTED])
def test_corrected_reports_translate_exactly(tr, ecg_id, german, english):
    t = tr.translate(german)
    assert t.text == english
    assert t.translated > 0


def test_corrected_reports_are_the_tables_reports(ptbxl_metadata):
    table = pd.read_csv(ptbxl_metadata / "ptbxl_database.csv", usecols=["ecg_id", "report"]).set_index("ecg_id")
    assert [i for i, g, _ in CORRECTED if table.at[i, "report"] != g] == []
    assert len({g for _, g, _ in CORRECTED}) == len(CORRECTED)


def test_a_broken_line_is_joined_in_a_real_report(tr):
    # ecg_id 2767: "rechtsschen- kelblock" is "rechtsschenkelblock" broken across a line
    report = ('ruhe ekg zur ergometrie: normokarder sr , linkslagetyp, partieller rechtsschen- kelblock. in sitzender '
              'position biphasische/negative t in v1-4 ergometrie: der patient leistet Über 2 min. 200 watt(soll:190) '
              'adÄquates bd- und pulsverhalten, keine ischÄmieze')
    t = tr.translate(report)
    assert "normocardic sinus rhythm, left axis, partial right bundle branch block. in sitting position" in t.text
    # "bd- und pulsverhalten" (Blutdruck- und Pulsverhalten) is a suspended compound, not a broken word
    assert "adequate blood pressure and pulse response" in t.text
    assert not t.unknown


def test_a_dash_a_minus_and_unknown_breaks_stay(tr):
    assert tr.translate("st-hebung v1 - v3").text == "st elevation v1 - v3"
    assert translate._rejoin("myokard- oder perikardschaden", tr.table) == "myokard- oder perikardschaden"
    assert translate._rejoin("blubber- wort", tr.table) == "blubber- wort"
    assert translate._rejoin("rechtsschen- kelblock t- veraenderungen", tr.table) == \
        "rechtsschenkelblock t-veraenderungen"
    # a report without a German word stays its normalised self, line break and all (ecg_id 10053)
    english = ("sinus rhythm. pr interval is short and delta waves are present. these features indicate the "
               "wolff-parkinson-white syndrome. patients may be prone to bouts of paroxysmal supra- ventricular "
               "tachyarrhythmias.")
    assert tr.translate(english).text == english


def test_ob_es_and_belastung_in_every_report_of_the_table(tr, ptbxl_metadata):
    """Over the full table: every report with the word "ob" (7) says "unremarkable"; every report with "es" (46,
    alone or ending a compound such as "vorhof-es"; all mean Extrasystolen) says "extrasystoles" and no "it"; every
    report with "belastung" alone (12, all about the exercise test) says "exercise" and not "under strain"."""
    reports = pd.read_csv(ptbxl_metadata / "ptbxl_database.csv", usecols=["report"])["report"].dropna()

    def having(word):   # the word on its own or at the end of a compound ("vorhof-es")
        return [r for r in reports if re.search(rf"\b{word}\b", translate.normalise(r))]
    ob, es, belastung = having("ob"), having("es"), having("belastung")
    assert (len(ob), len(es), len(belastung)) == (7, 46, 12)
    for r in ob:
        assert "unremarkable" in tr.translate(r).text.split() and "whether" not in tr.translate(r).text.split()
    for r in es:
        assert "extrasystoles" in tr.translate(r).text and "it" not in tr.translate(r).text.split()
    for r in belastung:
        assert "exercise" in tr.translate(r).text and "under strain" not in tr.translate(r).text


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
    # 246,968 word tokens: words broken across a line ("rechtsschen- kelblock") count once
    assert m["n_word_tokens"] == 246968 and m["n_version_tags_dropped"] == 7062
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
