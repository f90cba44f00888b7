"""genoformer.io.bed on intervals from the bundled chloroplast annotation and on broken BED files."""

import gzip
import shutil
import zlib

import numpy as np
import pandas as pd
import pytest

from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.io.bed import class_order, read_bed
from genoformer.io.fasta import Reference


@pytest.fixture(scope="module")
def chloroplast(chloroplast_fasta, tmp_path_factory):
    path = shutil.copy(chloroplast_fasta, tmp_path_factory.mktemp("cp") / "cp.fa")
    with Reference(path) as reference:
        yield reference


@pytest.fixture(scope="module")
def genes(resources):
    """The chloroplast genes of the curated GFF3 (1-based inclusive), as parsed independently."""
    table = pd.read_csv(resources / "athal_cp" / "NC_000932.1.gff3", sep="\t", comment="#", header=None)
    table = table[table[2] == "gene"]
    return pd.DataFrame({"chrom": table[0], "start": table[3], "end": table[4], "strand": table[6],
                         "name": table[8].str.replace("Name=", "", regex=False).str.split(";").str[0]})


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def gene_lines(genes, label=False):
    return [f"{g.chrom}\t{g.start - 1}\t{g.end}\t{g.name}\t0\t{g.strand}" + (f"\t{i % 2}" if label else "")
            for i, g in enumerate(genes.itertuples())]


def one_line(err):
    assert "\n" not in str(err.value)
    return str(err.value)


def test_genes_from_gff_round_trip(chloroplast, genes, tmp_path):
    path = write(tmp_path / "genes.bed", ["track name=genes", "browser position NC_000932.1:1-1000",
                                          "# converted from GFF3", *gene_lines(genes)])
    table = read_bed(path, chloroplast)
    assert list(table.columns) == ["chrom", "start", "end", "name", "score", "strand"]
    assert len(table) == len(genes) == 131
    np.testing.assert_array_equal(table["start"], genes["start"] - 1)  # 0-based
    np.testing.assert_array_equal(table["end"], genes["end"])
    assert table["strand"].tolist() == genes["strand"].tolist()
    assert table["name"].tolist() == genes["name"].tolist()
    assert table["start"].dtype == np.int64 and table["score"].dtype == float
    first = table.iloc[0]
    assert chloroplast.fetch(first.chrom, first.start, first.end) == \
        chloroplast.fetch("NC_000932.1")[genes.iloc[0].start - 1:genes.iloc[0].end]


def test_three_columns_and_gzip(chloroplast, tmp_path):
    path = tmp_path / "regions.bed.gz"
    path.write_bytes(gzip.compress(b"NC_000932.1\t0\t100\nNC_000932.1\t154000\t154478\n"))
    table = read_bed(path, chloroplast)
    assert list(table.columns) == ["chrom", "start", "end"]
    assert table[["start", "end"]].values.tolist() == [[0, 100], [154000, 154478]]


def test_label_column_choices(genes, tmp_path):
    path = write(tmp_path / "labelled.bed", gene_lines(genes, label=True))
    assert read_bed(path)["label"].tolist() == [i % 2 for i in range(len(genes))]
    assert read_bed(path)["label"].dtype == np.int64
    assert read_bed(path, label_column="name")["label"].tolist() == genes["name"].tolist()
    assert "label" not in read_bed(path, label_column=None)
    unlabelled = write(tmp_path / "unlabelled.bed", gene_lines(genes))
    assert "label" not in read_bed(unlabelled)
    with pytest.raises(InputError, match="label column 8"):
        read_bed(path, label_column=8)


def test_an_empty_label_is_an_error_not_a_class(genes, tmp_path):
    """A gene line whose label cell is empty (a tab too many, a spreadsheet gap) must not become a class ''."""
    lines = gene_lines(genes, label=True)
    lines[5] = lines[5].rsplit("\t", 1)[0] + "\t"
    path = write(tmp_path / "labelled.bed", lines)
    with pytest.raises(InputError) as err:
        read_bed(path)
    assert f"{path} line 6: label column 7 is empty" in one_line(err)
    named = write(tmp_path / "named.bed", [line.replace(f"\t{genes.name.iloc[2]}\t", "\t\t") if i == 2 else line
                                           for i, line in enumerate(gene_lines(genes))])
    with pytest.raises(InputError, match="line 3: label column 4 is empty"):
        read_bed(named, label_column="name")
    assert "label" not in read_bed(named)  # column 4 is only a name when it is not the label


def test_string_labels_and_missing_score(tmp_path):
    path = write(tmp_path / "classes.bed", ["track name=classes", "NC_000932.1\t0\t10\ta\t.\t+\tpromoter",
                                            "# a comment", "NC_000932.1\t10\t20\tb\t5\t-\tenhancer"])
    table = read_bed(path)
    assert table["label"].tolist() == ["promoter", "enhancer"]
    assert np.isnan(table["score"].iloc[0]) and table["score"].iloc[1] == 5.0
    assert table.index.name == "line" and table.index.tolist() == [2, 4]  # 1-based lines of the file


@pytest.mark.parametrize("line, problem, error", [
    ("NC_000932.1\t100\t100", "start 100 is not before end 100", InputError),
    ("NC_000932.1\t200\t100", "start 200 is not before end 100", InputError),
    ("NC_000932.1\t154000\t154479", "end 154479 is past the end of contig NC_000932.1 (length 154478", InputError),
    ("chrC\t0\t100", "contig 'chrC' is not in reference", MismatchError),
    ("NC_000932.1\t1e3\t2000", "start '1e3' is not an integer", InputError),
    ("NC_000932.1\t10\t20.5", "end '20.5' is not an integer", InputError),
    ("NC_000932.1\t1_000\t2000", "start '1_000' is not an integer", InputError),
    ("NC_000932.1\t+100\t2000", "start '+100' is not an integer", InputError),
    ("NC_000932.1\t 5\t2000", "start ' 5' is not an integer", InputError),
    ("NC_000932.1\t10\t20 ", "end '20 ' is not an integer", InputError),
    ("NC_000932.1\t10\t\u0662\u0660", "end '\u0662\u0660' is not an integer", InputError),
    ("NC_000932.1\t-0\t20", "start '-0' is not an integer", InputError),
    ("NC_000932.1\t-5\t20", "start -5 is negative", InputError),
    ("NC_000932.1\t10\t-20", "end -20 is negative", InputError),
    ("NC_000932.1 10 20", "1 column(s), BED needs at least 3 (fields must be separated by tabs)", InputError),
    ("NC_000932.1\t10", "2 column(s)", InputError),
    ("NC_000932.1\t10\t20\tx\thigh", "score 'high' is not a number", InputError),
    ("NC_000932.1\t10\t20\tx\t0\tforward", "strand 'forward' is not one of", InputError),
])
def test_bad_lines_name_file_and_line(chloroplast, tmp_path, line, problem, error):
    path = write(tmp_path / "bad.bed", ["track name=x", "# comment", "", line])
    with pytest.raises(error) as err:
        read_bed(path, chloroplast)
    assert f"{path} line 4: {problem}" in one_line(err)


def test_corrupt_gzip_is_an_input_error(resources, tmp_path):
    """Bytes overwritten mid-stream in a gzipped BED of the bundled CDS: a one-line error, not a zlib traceback."""
    gff = pd.read_csv(resources / "cdiph" / "NZ_LN831026.1.pyrodigal_predicted_CDS.gff3", sep="\t", comment="#",
                      header=None).head(1000)
    lines = [f"{row[0]}\t{row[3] - 1}\t{row[4]}\tcds\t0\t{row[6]}\n" for row in gff.itertuples(index=False)]
    data = bytearray(gzip.compress("".join(lines).encode(), mtime=0))
    middle = len(data) // 2
    data[middle:middle + 128] = bytes(255 - byte for byte in data[middle:middle + 128])
    path = tmp_path / "cds.bed.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(zlib.error):  # the damage is one zlib itself rejects (not only a CRC mismatch at the end)
        gzip.decompress(path.read_bytes())
    with pytest.raises(InputError) as err:
        read_bed(path)
    assert one_line(err).startswith(f"{path}: cannot read BED after line ")
    assert "corrupt gzip data (Error -3 while decompressing data" in str(err.value)


def test_inconsistent_column_count(tmp_path):
    path = write(tmp_path / "ragged.bed", ["NC_000932.1\t0\t10\ta", "NC_000932.1\t10\t20"])
    with pytest.raises(InputError, match="line 2: 3 columns where earlier lines have 4"):
        read_bed(path)


def test_contig_not_checked_without_reference(tmp_path):
    path = write(tmp_path / "other.bed", ["chr1\t0\t248956422"])
    assert read_bed(path)["end"].tolist() == [248956422]


def test_empty_and_missing(tmp_path):
    with pytest.raises(InputError, match="no intervals"):
        read_bed(write(tmp_path / "only_header.bed", ["track name=x", "# nothing"]))
    with pytest.raises(InputError, match="no intervals"):
        read_bed(write(tmp_path / "empty.bed", []))
    with pytest.raises(MissingFileError):
        read_bed(tmp_path / "absent.bed")


def test_only_track_and_browser_words_make_header_lines(chloroplast, tmp_path):
    """A header line is one whose first word is ``track`` or ``browser``: a contig whose name only starts with
    those letters is data, checked like any other line, not silently dropped."""
    path = write(tmp_path / "contigs.bed", ["track name=x", "browser hide all", "NC_000932.1\t0\t10",
                                            "trackC\t10\t20", "browser_contig\t20\t30"])
    assert read_bed(path)["chrom"].tolist() == ["NC_000932.1", "trackC", "browser_contig"]
    with pytest.raises(MismatchError) as err:
        read_bed(path, chloroplast)
    assert f"{path} line 4: contig 'trackC' is not in reference" in one_line(err)


@pytest.mark.parametrize("label", ["coding ", " coding", " coding\r"])
def test_a_label_with_spaces_around_it_is_an_error_not_a_class(tmp_path, label):
    """'coding ' (a spreadsheet's trailing space) next to 'coding' would silently be a class of its own."""
    path = write(tmp_path / "spaces.bed", ["NC_000932.1\t0\t10\ta\t0\t+\tcoding",
                                           f"NC_000932.1\t10\t20\tb\t0\t+\t{label}"])
    with pytest.raises(InputError) as err:
        read_bed(path)
    assert f"{path} line 2: label {label.rstrip(chr(13))!r} in column 7 has spaces around it" in one_line(err)
    assert read_bed(write(tmp_path / "inner.bed", ["NC_000932.1\t0\t10\ta\t0\t+\tcoding region"]))["label"].tolist() \
        == ["coding region"]


def test_thick_start_of_a_bed12_is_not_taken_for_a_label(genes, tmp_path):
    """In BED9/BED12, column 7 is thickStart: read as the default label it made every gene a class of its own."""
    bed12 = write(tmp_path / "genes12.bed", [f"{line}\t{g.start - 1}\t{g.end}\t0\t1\t{g.end - g.start + 1},\t0,"
                                             for line, g in zip(gene_lines(genes), genes.itertuples())])
    with pytest.raises(InputError) as err:
        read_bed(bed12)
    assert one_line(err).startswith(f"{bed12}: columns 7 and 8 hold thickStart and thickEnd on every line")
    assert read_bed(bed12, label_column="name")["label"].tolist() == genes["name"].tolist()
    assert len(read_bed(bed12, optional_label=True)) == len(genes)  # --predict regions: the label is only carried
    labelled = write(tmp_path / "labelled8.bed", [f"{line}\t{i % 2}\t{g.end}" for i, (line, g) in
                                                  enumerate(zip(gene_lines(genes), genes.itertuples()))])
    assert read_bed(labelled)["label"].tolist() == [i % 2 for i in range(len(genes))]


def test_an_unknown_contig_name_shows_invisible_characters(chloroplast, tmp_path):
    """A byte-order mark (a spreadsheet's UTF-8 export) glued to the first contig name: the error shows it, not a
    name that reads exactly like the reference's."""
    path = tmp_path / "bom.bed"
    path.write_text("\ufeffNC_000932.1\t0\t10\n", encoding="utf-8")
    with pytest.raises(MismatchError) as err:
        read_bed(path, chloroplast)
    assert f"{path} line 1: contig '\\ufeffNC_000932.1' is not in reference" in one_line(err)


def test_a_header_row_naming_the_columns_says_so(chloroplast, genes, tmp_path):
    """A spreadsheet's column names above the chloroplast genes: the error says what the line looks like and how
    to keep it ('#'), which then reads the same genes."""
    header = "chrom\tchromStart\tchromEnd\tname\tscore\tstrand\tclass"
    path = write(tmp_path / "genes.bed", [header, *gene_lines(genes, label=True)])
    with pytest.raises(InputError) as err:
        read_bed(path, chloroplast)
    assert one_line(err) == (f"{path} line 1: start 'chromStart' and end 'chromEnd' are not coordinates: a header "
                             "row naming the columns? Start it with '#' (BED skips '#', track and browser lines)")
    write(path, ["#" + header, *gene_lines(genes, label=True)])
    assert len(read_bed(path, chloroplast)) == 131


def test_a_bed12_line_of_several_blocks_is_its_whole_span_with_a_warning(chloroplast, resources, tmp_path, caplog):
    """trnK's two exons (GFF3 lines 1717-1751 and 4311-4347, matK in the intron) and psbA's one, as BED12: the
    region is chromStart..chromEnd, introns included, and the warning counts the one line of two blocks."""
    gff = (resources / "athal_cp" / "NC_000932.1.gff3").read_text()
    assert "\ttRNA\t1717\t1751\t" in gff and "\ttRNA\t4311\t4347\t" in gff and "\tCDS\t383\t1444\t" in gff
    path = write(tmp_path / "genes12.bed", [
        "NC_000932.1\t382\t1444\tpsbA\t0\t-\t382\t1444\t0\t1\t1062,\t0,\tprotein",
        "NC_000932.1\t1716\t4347\ttrnK\t0\t-\t1716\t4347\t0\t2\t35,37,\t0,2594,\trna"])
    with caplog.at_level("WARNING", logger="genoformer.io.bed"):
        table = read_bed(path, chloroplast, 13)
    assert table[["start", "end", "label"]].values.tolist() == [[382, 1444, "protein"], [1716, 4347, "rna"]]
    assert f"{path}: 1 line has more than one block (BED12 column 10; line 2 first)" in caplog.text
    assert "its gaps (introns) included" in caplog.text


def test_a_dot_label_is_a_missing_value_not_a_class(chloroplast, genes, tmp_path):
    """'.' is BED's missing value: a gene labelled '.' among 0/1 labels is an error naming its line, not a third
    class of one gene; where labels are only carried along (--predict) it is kept."""
    lines = gene_lines(genes, label=True)
    lines[9] = lines[9].rsplit("\t", 1)[0] + "\t."
    path = write(tmp_path / "labelled.bed", lines)
    with pytest.raises(InputError) as err:
        read_bed(path, chloroplast)
    assert one_line(err) == (f"{path} line 10: label '.' in column 7 is BED's mark for a missing value, not a class; "
                             "give the region its class or leave it out")
    assert read_bed(path, chloroplast, optional_label=True)["label"].iloc[9] == "."


@pytest.mark.parametrize("labels, expected", [
    (["0", "1", "-2", "10"], [0, 1, -2, 10]),
    (["01", "1"], ["01", "1"]),
    (["+1", "1"], ["+1", "1"]),
    (["1_0", "10"], ["1_0", "10"]),
    (["-0", "0"], ["-0", "0"]),
    (["\u0661", "1"], ["\u0661", "1"]),
    (["9223372036854775807", "-9223372036854775808"], [2 ** 63 - 1, -2 ** 63]),
    (["12345678901234567890", "7"], ["12345678901234567890", "7"]),  # past int64: as written, never wrapped
    (["-9223372036854775809", "7"], ["-9223372036854775809", "7"]),
])
def test_labels_are_integers_only_when_written_plainly(labels, expected, tmp_path):
    """Zero-padded, signed or underscored numbers stay strings as written: ``01`` and ``1`` are two classes."""
    lines = [f"NC_000932.1\t{10 * i}\t{10 * i + 5}\tr{i}\t0\t+\t{label}" for i, label in enumerate(labels)]
    table = read_bed(write(tmp_path / "labels.bed", lines))
    assert table["label"].tolist() == expected
    assert table["label"].nunique() == len(set(labels))


def test_class_order_is_numeric_and_fixed():
    """Integer names sort as numbers; names equal as numbers ('01', '1') in one order whatever the input order."""
    assert class_order([10, 9, -1]) == ["-1", "9", "10"]
    assert class_order(["1", "01", "2"]) == class_order(["2", "01", "1"]) == ["01", "1", "2"]
    assert class_order(["b", "a", "10"]) == ["10", "a", "b"]
