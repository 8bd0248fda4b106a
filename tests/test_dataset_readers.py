"""Files a lab hands over (issue #18): Excel workbooks, German-Excel CSVs (`;`, decimal
commas, BOM), Windows-1252 text, spectra and references in two files. Each loads the same
content id as the equivalent plain CSV."""

from __future__ import annotations

import pytest
from n4afs_core.data import datasets
from n4afs_core.errors import DatasetError
from n4afs_core.store.ids import sha256_hex

from tests.conftest import write_csv
from tests.dataset_files import german_csv, plain_csv, wheat_columns, xlsx


@pytest.fixture(scope="module")
def wheat():
    return wheat_columns()


def content_id(spectra: datasets.Spectra) -> str:
    return sha256_hex(datasets.to_parquet_bytes(spectra))


@pytest.fixture
def plain_id(tmp_path, wheat):
    return content_id(datasets.load_csv(plain_csv(tmp_path / "wheat.csv", *wheat)))


def test_xlsx_loads_the_same_content_id_as_the_plain_csv(tmp_path, wheat, plain_id):
    s = datasets.load_any(xlsx(tmp_path / "wheat.xlsx", *wheat))
    assert s.name == "wheat" and s.target_names == ["protein", "moisture"]
    assert list(s.metadata) == ["operator"]
    assert content_id(s) == plain_id
    assert s.source_sha256 == sha256_hex((tmp_path / "wheat.xlsx").read_bytes())


def test_xlsx_sheet_by_name(tmp_path, wheat, plain_id):
    path = xlsx(tmp_path / "wheat.xlsx", *wheat, sheet="Spectra")
    with pytest.raises(DatasetError, match=r"2 sheets \('Notes', 'Spectra'\): choose one"):
        datasets.load_any(path)
    assert content_id(datasets.load_any(path, sheet="Spectra")) == plain_id
    with pytest.raises(DatasetError, match="no sheet 'Data'.*'Notes', 'Spectra'"):
        datasets.load_any(path, sheet="Data")


def test_xls_is_read_too(tmp_path):
    xlwt = pytest.importorskip("xlwt")  # a dev dependency: the only writer of .xls files
    book = xlwt.Workbook()
    sheet = book.add_sheet("data")
    for c, value in enumerate(["sample_id", "protein", 1100.0, 1100.5]):
        sheet.write(0, c, value)
    for r, row in enumerate([["A", 12.5, 0.1, 0.2], ["B", 13.0, 0.3, 0.1]], start=1):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.save(str(tmp_path / "old.xls"))
    s = datasets.load_any(tmp_path / "old.xls")
    plain = write_csv(
        tmp_path / "old.csv", "sample_id,protein,1100,1100.5\nA,12.5,0.1,0.2\nB,13.0,0.3,0.1\n"
    )
    assert s.feature_names == ["1100", "1100.5"]
    assert content_id(s) == content_id(datasets.load_csv(plain))


@pytest.mark.parametrize("bom", [True, False], ids=["bom", "no-bom"])
def test_german_excel_csv_loads_the_same_content_id_as_the_plain_csv(
    tmp_path, wheat, plain_id, bom
):
    s = datasets.load_csv(german_csv(tmp_path / "wheat.csv", *wheat, bom=bom))
    assert content_id(s) == plain_id


def test_decimal_comma_wavelength_headers(tmp_path):
    german = "Probe;Protein;1100,5;1101,0;1101,5\r\nA;12,5;0,1;0,2;0,3\r\nB;13,0;0,2;0,3;0,4\r\n"
    s = datasets.load_csv(write_csv(tmp_path / "de.csv", german), sample_id="Probe")
    assert s.feature_names == ["1100.5", "1101.0", "1101.5"]
    assert s.target_names == ["Protein"]
    plain = "Probe,Protein,1100.5,1101.0,1101.5\nA,12.5,0.1,0.2,0.3\nB,13.0,0.2,0.3,0.4\n"
    same = datasets.load_csv(write_csv(tmp_path / "plain.csv", plain), sample_id="Probe")
    assert content_id(s) == content_id(same)


def test_tab_separated_with_decimal_commas(tmp_path):
    text = "sample_id\tprotein\t1100\t1102\nA\t12,5\t0,1\t0,2\nB\t13\t0,2\t0,3\n"
    s = datasets.load_csv(write_csv(tmp_path / "tab.txt", text))
    assert s.target().tolist() == [12.5, 13.0] and s.X[0].tolist() == [0.1, 0.2]


def test_windows_1252_is_named_and_read_with_encoding(tmp_path):
    text = (
        "sample_id;Protéine;opérateur;1100;1102\r\nA;12,5;Zoé;0,1;0,2\r\nB;13,0;Jürgen;0,2;0,3\r\n"
    )
    path = tmp_path / "ansi.csv"
    path.write_bytes(text.encode("cp1252"))
    with pytest.raises(DatasetError, match=r"not UTF-8 .*Windows-1252.*--encoding cp1252"):
        datasets.load_csv(path)
    s = datasets.load_csv(path, encoding="cp1252")
    assert s.target_names == ["Protéine"] and s.metadata["opérateur"].tolist() == ["Zoé", "Jürgen"]
    utf8 = write_csv(tmp_path / "utf8.csv", text)
    assert content_id(s) == content_id(datasets.load_csv(utf8))
    with pytest.raises(DatasetError, match="unknown encoding 'klingon'"):
        datasets.load_csv(path, encoding="klingon")


def test_spectra_and_references_joined_on_a_sample_id(tmp_path, wheat, plain_id):
    header, rows = wheat
    spectra = plain_csv(
        tmp_path / "X.csv", [header[0], *header[4:]], [[r[0], *r[4:]] for r in rows]
    )
    shuffled = list(reversed(rows))  # a lab's reference sheet need not be in scan order
    refs = plain_csv(tmp_path / "Y.csv", header[:4], [r[:4] for r in shuffled])
    s = datasets.load_any(spectra, references=refs, on="sample_id", name="wheat")
    assert s.sample_ids == [r[0] for r in rows]
    assert s.target_names == ["protein", "moisture"] and list(s.metadata) == ["operator"]
    assert s.feature_names == header[4:]
    reordered = plain_csv(
        tmp_path / "wheat.csv",
        [header[0], *header[4:], *header[1:4]],
        [[r[0], *r[4:], *r[1:4]] for r in rows],
    )
    assert content_id(s) == content_id(datasets.load_csv(reordered))


def test_a_sample_in_one_file_only_is_an_error_naming_it(tmp_path, wheat):
    header, rows = wheat
    spectra = plain_csv(
        tmp_path / "X.csv", [header[0], *header[4:]], [[r[0], *r[4:]] for r in rows]
    )
    refs = plain_csv(tmp_path / "Y.csv", header[:4], [r[:4] for r in rows[2:]])
    with pytest.raises(
        DatasetError, match=r"2 sample\(s\) of .*X\.csv have no row in .*Y\.csv: 'W001', 'W002'"
    ):
        datasets.load_any(spectra, references=refs, on="sample_id")
    with pytest.raises(DatasetError, match=r"X\.csv has no column 'code'"):
        datasets.load_any(spectra, references=refs, on="code")
    extra = plain_csv(
        tmp_path / "Y2.csv", header[:4], [r[:4] for r in rows] + [["W999", 1.0, 2.0, "x"]]
    )
    with pytest.raises(
        DatasetError, match=r"1 sample\(s\) of .*Y2\.csv have no row in .*X\.csv: 'W999'"
    ):
        datasets.load_any(spectra, references=extra, on="sample_id")
