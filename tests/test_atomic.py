"""Atomic outputs (genoformer.atomic): all or nothing, and never in place of something the user made."""

import os
from pathlib import Path

import pytest

from genoformer.atomic import (
    OWNER_FILE,
    atomic_dir,
    atomic_indexed,
    atomic_path,
    check_replaceable,
    write_json,
    write_text,
)
from genoformer.cli import main
from genoformer.errors import ConfigError

SARS_COV_2 = "resources/sarscov2/NC_045512.2.fasta"


def test_atomic_dir_replaces_its_own_output_whole(tmp_path):
    out = tmp_path / "result"
    with atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("1")
        (tmp / "old-only.txt").write_text("x")
    with atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [OWNER_FILE, "metrics.json"]
    assert (out / "metrics.json").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]  # no temporary or .old folder left


def test_atomic_dir_failure_keeps_the_previous_output(tmp_path):
    out = tmp_path / "result"
    with atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("half")
        raise RuntimeError("killed")
    assert (out / "metrics.json").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


def test_atomic_dir_puts_back_the_output_a_kill_left_moved_aside(tmp_path):
    """A kill between atomic_dir's two renames leaves the previous output at .result.old and none at result: the
    next call puts it back first, so even a failed next run leaves the previous output in place."""
    out = tmp_path / "result"
    with atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("1")
    os.replace(out, tmp_path / ".result.old")  # the state a kill between the two renames leaves
    with pytest.raises(RuntimeError), atomic_dir(out, marker="metrics.json") as tmp:
        raise RuntimeError("killed again")
    assert (out / "metrics.json").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


def test_a_folder_whose_marker_was_deleted_is_still_replaceable_but_not_by_another_kind(tmp_path):
    """What snakemake does before rerunning a job: it deletes the declared file (the marker), not the folder's
    other files. The folder is still known as this kind's output; an output of another kind does not replace it."""
    out = tmp_path / "result"
    with atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("1")
        (tmp / "model").mkdir()
    (out / "metrics.json").unlink()
    with atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("2")
    assert (out / "metrics.json").read_text() == "2" and not (out / "model").exists()
    (out / "metrics.json").unlink()
    with pytest.raises(ConfigError, match=r"not one this command wrote \(no manifest.json in it\)"):
        check_replaceable(out, "manifest.json")
    # emptied by hand (the claim file, hidden, stays) and filled with the user's own files: theirs, not replaced
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not one this command wrote"):
        check_replaceable(out, "metrics.json")


def test_an_output_path_that_is_a_symlink_replaces_the_folder_it_points_to(tmp_path):
    """tokens/ds -> big/ds: the real folder is replaced and the link kept, run after run."""
    (tmp_path / "big").mkdir()
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "ds").symlink_to(tmp_path / "big" / "ds", target_is_directory=True)
    for run in ("1", "2"):
        with atomic_dir(tmp_path / "tokens" / "ds", marker="metrics.json") as tmp:
            (tmp / "metrics.json").write_text(run)
        assert (tmp_path / "tokens" / "ds").is_symlink() and (tmp_path / "big" / "ds" / "metrics.json").read_text() == run
    assert sorted(p.name for p in (tmp_path / "tokens").iterdir()) == ["ds"]


def test_atomic_dir_refuses_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "important"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(ConfigError, match=r"important: output folder exists and is not one this command wrote "
                                          r"\(no metrics.json in it\)"):
        with atomic_dir(mine, marker="metrics.json"):
            pytest.fail("the body must not run")
    assert (mine / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["important"]


def test_atomic_dir_refuses_a_file_and_the_current_folder(tmp_path, monkeypatch):
    data = tmp_path / "genome.fa"
    data.write_text(">x\nACGT\n")
    with pytest.raises(ConfigError, match="genome.fa: output folder exists and is a file"):
        with atomic_dir(data, marker="manifest.json"):
            pass
    assert data.read_text() == ">x\nACGT\n"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"{tmp_path}: output folder exists and is not one"):
        with atomic_dir(".", marker="manifest.json"):
            pass
    assert data.exists()


def test_atomic_dir_takes_an_empty_folder(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    with atomic_dir(out, marker="manifest.json") as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert (out / "manifest.json").exists()


def test_atomic_path_refuses_a_folder_and_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(ConfigError, match="output path is a folder"):
        with atomic_path(tmp_path):
            pass
    target = tmp_path / "table.tsv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.tsv"]


def test_cli_refuses_to_tokenize_over_a_users_folder(tmp_path, capfd, monkeypatch):
    """The audit's case: `--out important` used to wipe important/notes.txt and exit 0."""
    mine = tmp_path / "important"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    monkeypatch.chdir(os.path.dirname(os.path.dirname(__file__)))
    capfd.readouterr()
    code = main(["tokenize", "--fasta", SARS_COV_2, "--k", "1", "--window", "64", "--out", str(mine)])
    err = capfd.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "important: output folder exists and is not one this command wrote" in err
    assert (mine / "notes.txt").read_text() == "precious"


def test_cli_reports_an_unwritable_output_in_one_line(tmp_path, capfd, monkeypatch):
    """An OS error on a named path is one line with exit code 2, not a traceback: here the output's parent
    folder is a file, so it cannot be created."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.chdir(os.path.dirname(os.path.dirname(__file__)))
    capfd.readouterr()
    code = main(
        ["tokenize", "--fasta", SARS_COV_2, "--k", "1", "--window", "64", "--out", str(blocker / "tokens")])
    err = capfd.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"error: {blocker}: File exists" in err  # mkdir of its parent folder failed: a file is there


@pytest.mark.parametrize("command", [
    ["classify-regions", "--bed", "labels.bed"],
    ["classify-variants", "--vcf", "labelled.vcf.gz", "--label-field", "CLASS"],
])
def test_classifiers_refuse_a_users_folder_before_any_work(command, tmp_path, capfd):
    """The output folder is checked before any input is read (inputs here do not even exist), so a mistyped
    --out costs nothing, not the minutes of embedding and training before the write."""
    mine = tmp_path / "important"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    capfd.readouterr()
    code = main([*command, "--reference", str(tmp_path / "missing.fa"), "--checkpoint", str(tmp_path / "run"),
                 "--out", str(mine)])
    err = capfd.readouterr().err
    assert code == 2
    assert "important: output folder exists and is not one this command wrote (no metrics.json in it)" in err
    assert (mine / "notes.txt").read_text() == "precious"


def test_write_json_writes_strict_json_with_null_for_nan(tmp_path):
    """A bootstrap interval no resample could estimate is NaN in Python; JSON has no NaN, so it is written null."""
    import json
    import math

    import numpy as np

    path = tmp_path / "metrics.json"
    write_json(path, {"auroc": {"value": 0.75, "ci95": [math.nan, math.inf]}, "n": np.int64(3).item(),
                      "per_class": (1, 2)})
    assert json.loads(path.read_text(), parse_constant=pytest.fail) == {
        "auroc": {"value": 0.75, "ci95": [None, None]}, "n": 3, "per_class": [1, 2]}


def test_atomic_indexed_never_pairs_the_new_file_with_the_old_index(tmp_path, monkeypatch):
    data, index = tmp_path / "x.vcf.gz", tmp_path / "x.vcf.gz.tbi"
    data.write_text("old")
    index.write_text("old index")
    seen, replace = [], os.replace

    def recording_replace(src, dst):  # the real rename, then what a reader would find at that moment
        replace(src, dst)
        seen.append((Path(dst).name, data.read_text(), index.read_text() if index.exists() else None))

    monkeypatch.setattr(os, "replace", recording_replace)
    with pytest.raises(RuntimeError):
        with atomic_indexed(data, index, suffix=".vcf.gz") as (tmp, tmp_index):
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert (data.read_text(), index.read_text()) == ("old", "old index") and seen == []
    with atomic_indexed(data, index, suffix=".vcf.gz") as (tmp, tmp_index):
        assert tmp.name.endswith(".vcf.gz")
        tmp.write_text("new")
        tmp_index.write_text("new index")
    assert seen == [("x.vcf.gz", "new", None), ("x.vcf.gz.tbi", "new", "new index")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.vcf.gz", "x.vcf.gz.tbi"]


@pytest.mark.parametrize("command,victim", [
    (["score-variants", "--reference", "REF", "--vcf", "VCF", "--checkpoint", "RUN", "--out", "VCF"], "VCF"),
    (["score-variants", "--reference", "REF", "--vcf", "VCF", "--checkpoint", "RUN", "--out", "new.vcf.gz",
      "--table", "VCF"], "VCF"),
    (["score-variants", "--reference", "REF", "--vcf", "VCF", "--checkpoint", "RUN", "--out", "new.vcf.gz",
      "--table", "new.vcf.gz"], None),
    (["region-labels", "--reference", "REF", "--gff", "GFF", "--out", "GFF"], "GFF"),
    (["evaluate", "--checkpoint", "RUN", "--data", "DATA", "--out", "RUN/config.json"], "RUN/config.json"),
])
def test_an_output_that_names_an_input_is_refused_before_any_work(command, victim, tmp_path, capfd):
    """Writing over an input (a slip of the tab key) would destroy it; the command refuses, naming the path."""
    (tmp_path / "RUN").mkdir()
    files = {"REF": "ref.fa", "VCF": "calls.vcf.gz", "GFF": "genes.gff3", "RUN": "RUN", "DATA": "tokens",
             "RUN/config.json": "RUN/config.json"}
    for name in ("calls.vcf.gz", "genes.gff3", "RUN/config.json"):
        (tmp_path / name).write_text("precious")
    args = [str(tmp_path / files[a]) if a in files else a for a in command]
    args = [str(tmp_path / a) if a == "new.vcf.gz" else a for a in args]
    capfd.readouterr()
    assert main(args) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "would overwrite one of its inputs" in err
    if victim is not None:
        assert (tmp_path / files[victim]).read_text() == "precious"


def test_weights_get_the_permissions_of_every_other_output(tmp_path):
    """safetensors writes its file anew, owner-only (0600): a run's or a fine-tuned classifier's weights were
    unreadable to the rest of a project group while their config.json next to them was not."""
    from genoformer.model import ReformerConfig, ReformerForSequenceClassification, save_pretrained

    model = ReformerForSequenceClassification(ReformerConfig(vocab_size=9, dim=8, depth=1, heads=2, max_seq_len=64), 2)
    previous = os.umask(0o022)
    try:
        save_pretrained(model, tmp_path / "model")
    finally:
        os.umask(previous)
    modes = {entry.name: entry.stat().st_mode & 0o777 for entry in (tmp_path / "model").iterdir()}
    assert modes == {"config.json": 0o644, "model.safetensors": 0o644}
