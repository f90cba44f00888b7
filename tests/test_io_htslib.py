"""genoformer.io.htslib: what htslib prints while pysam reads the bundled files goes to the log, not to fd 2."""

import logging
import os
import shutil

import pysam
import pytest

from genoformer.io.htslib import htslib_messages, read_quietly

log = logging.getLogger("genoformer.test_htslib")


def test_warning_goes_to_the_log_not_to_fd2(human_q, capfd, caplog):
    """The GIAB calls use an INFO field their header does not declare: htslib warns at the first record."""
    path = human_q / "NA12878.chr22.tiny.giab.vcf"
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG, logger=log.name), htslib_messages(log, path) as messages:
        with pysam.VariantFile(str(path)) as vcf:
            records = list(vcf)
        assert any("INFO 'PLNCIIonWG' at q:186 is not defined" in line for line in messages.lines)  # in the block
    assert len(records) == 14
    assert capfd.readouterr().err == ""
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{path}: htslib: INFO 'PLNCIIonWG' at q:186 is not defined in the header, assuming Type=String" \
        in warnings
    assert not any(message.startswith("[") for message in warnings)


def test_missing_index_message_is_debug(human_q, tmp_path, caplog):
    cram = shutil.copy(human_q / "NA12878.chr22.tiny.cram", tmp_path)
    with caplog.at_level(logging.DEBUG, logger=log.name), htslib_messages(log, cram):
        pysam.AlignmentFile(str(cram), reference_filename=str(human_q / "q.fa")).close()
    assert [(r.levelno, "Could not retrieve index file" in r.getMessage()) for r in caplog.records] == \
        [(logging.DEBUG, True)]


def test_fd2_is_restored_after_an_exception(human_q, tmp_path, capfd, caplog):
    """A bgzipped VCF cut inside its only block: htslib's reason is readable in the block; after it fd 2 is
    pytest's capture again and htslib's lines are at DEBUG (the caller's error carries them)."""
    data = (human_q / "q.vcf.gz").read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[:3000] + data[-28:])
    capfd.readouterr()
    reasons = []
    with caplog.at_level(logging.DEBUG, logger=log.name), pytest.raises(ValueError) as err, \
            htslib_messages(log, cut) as messages:
        try:
            pysam.VariantFile(str(cut))
        except ValueError as error:
            reasons.append(messages.reason(error))
            raise
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
    assert reasons == ["Failed to read BGZF block data at offset 0 expected 4122 bytes; hread returned 3010"]
    assert "does not have valid header" in str(err.value)
    assert caplog.records and all(r.levelno == logging.DEBUG for r in caplog.records)


@pytest.mark.parametrize("batch", [1, 2, 256])
def test_read_quietly_numbers_the_record_that_fails(human_q, tmp_path, batch):
    lines = (human_q / "NA12878.chr22.tiny.giab.vcf").read_text().splitlines(keepends=True)
    fields = lines[-10].split("\t")  # the 5th of 14 records
    lines[-10] = "\t".join([fields[0], "abc", *fields[2:]])
    path = tmp_path / "bad_pos.vcf"
    path.write_text("".join(lines))
    seen = []
    with pysam.VariantFile(str(path)) as vcf, pytest.raises(LookupError) as err:
        for record in read_quietly(vcf, log, path, lambda reason, number: LookupError(number, reason), batch=batch):
            seen.append(record.pos)
    assert err.value.args == (5, "Could not parse the position 'abc'")
    assert len(seen) == 4 // batch * batch  # whole batches are handed on; the failing one is not
