"""Atomic outputs (genoformer.atomic): all or nothing, and never in place of something the user made."""

import logging
import os
import signal
import subprocess
import sys
import time
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
from genoformer.temps import writer

SARS_COV_2 = "resources/sarscov2/NC_045512.2.fasta"
ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20

# A writer that enters atomic_dir (kind "dir") or atomic_path (kind "file", optional suffix), writes 1 MiB into its
# temporary, says where that is through the file READY, and sleeps until it is killed.
WRITER = """
import os, sys, time
from pathlib import Path
from genoformer.atomic import atomic_dir, atomic_path
kind, out, ready, *suffix = sys.argv[1:]
with (atomic_dir(out, marker="metrics.json") if kind == "dir" else atomic_path(out, suffix="".join(suffix))) as tmp:
    (tmp / "shard.npy" if kind == "dir" else tmp).write_bytes(bytes(1 << 20))
    Path(ready + ".part").write_text(str(tmp))
    os.replace(ready + ".part", ready)
    time.sleep(600)
"""


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


@pytest.fixture
def writer_process(tmp_path):
    """Start a WRITER subprocess and wait until its temporary is written: returns (process, temporary). Those still
    running at the end are killed."""
    started = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    (tmp_path / "signals").mkdir()

    def start(kind, out, *suffix):
        ready = tmp_path / "signals" / f"ready-{len(started)}"
        process = subprocess.Popen([sys.executable, "-c", WRITER, kind, str(out), str(ready), *suffix], env=env)
        started.append(process)
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, "the writer never got to its write"
            time.sleep(0.01)
        return process, Path(ready.read_text())

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def kill(process):
    """SIGKILL, as a Slurm time limit or the OOM killer ends a job: no handler runs, no temporary is removed."""
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_the_next_write_removes_the_folder_a_killed_writer_left_but_not_a_running_ones(tmp_path, writer_process,
                                                                                    caplog):
    """A checkpoint or token dataset half-written by a killed job stays hidden, 1 MiB here, gigabytes in real use:
    the next atomic_dir of the same output removes it, saying how much it freed. A writer still running (a second
    job on the same output) keeps its temporary."""
    out = tmp_path / "out" / "ds"
    running, running_tmp = writer_process("dir", out)
    killed, killed_tmp = writer_process("dir", out)
    kill(killed)
    assert killed_tmp.is_dir() and running_tmp.is_dir()
    assert killed_tmp.name.startswith(f".ds.{writer()}.{killed.pid}.") and killed_tmp.name.endswith(".tmp")
    with caplog.at_level(logging.INFO, logger="genoformer.temps"):
        with atomic_dir(out, marker="metrics.json") as tmp:
            (tmp / "metrics.json").write_text("1")
    assert hidden(out.parent) == [running_tmp.name]
    assert (running_tmp / "shard.npy").stat().st_size == MIB and running.poll() is None
    assert f"removed {killed_tmp}, a temporary of ds left by process {killed.pid} (no longer running): " \
           "1.0 MiB freed" in caplog.text
    assert str(running_tmp) not in caplog.text


def test_the_next_write_removes_the_file_a_killed_writer_left_suffix_and_all(tmp_path, writer_process, caplog):
    """atomic_path's temporary keeps its suffix (safetensors, PNG) after .tmp; the killed writer's is removed, the
    running writer's kept."""
    out = tmp_path / "model.safetensors"
    running, running_tmp = writer_process("file", out, ".safetensors")
    killed, killed_tmp = writer_process("file", out, ".safetensors")
    kill(killed)
    assert killed_tmp.name.startswith(f".model.safetensors.{writer()}.{killed.pid}.")
    assert killed_tmp.name.endswith(".tmp.safetensors") and killed_tmp.stat().st_size == MIB
    with caplog.at_level(logging.INFO, logger="genoformer.temps"):
        with atomic_path(out, suffix=".safetensors") as tmp:
            tmp.write_text("weights")
    assert hidden(tmp_path) == [running_tmp.name] and running_tmp.stat().st_size == MIB
    assert out.read_text() == "weights"
    assert f"removed {killed_tmp}" in caplog.text and "1.0 MiB freed" in caplog.text


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_cleaning_an_output_never_touches_another_outputs_temporary(kind, tmp_path, writer_process):
    """Names are parsed whole: the temporaries of `a.b` and `a2` (whose names start like `a`'s) and of `a`
    written with another suffix are not `a`'s, even when their writers are dead too."""
    outputs = ["a", "a.b", "a2", "a.b.c", "b.a"]
    leftovers = {}
    for name in outputs:
        process, leftovers[name] = writer_process(kind, tmp_path / name)
        kill(process)
    process, leftovers["a.png"] = writer_process("file", tmp_path / "a", ".png")
    kill(process)
    if kind == "dir":
        with atomic_dir(tmp_path / "a", marker="metrics.json") as tmp:
            (tmp / "metrics.json").write_text("1")
    else:
        write_text(tmp_path / "a", "1")
    assert not leftovers["a"].exists()
    assert hidden(tmp_path) == sorted(leftovers[name].name for name in leftovers if name != "a")
    write_text(tmp_path / "a.b", "1")  # and a.b's own write takes only a.b's
    assert not leftovers["a.b"].exists() and leftovers["a.b.c"].exists() and leftovers["a.png"].exists()


def test_temporaries_of_another_host_are_kept_and_named_once(tmp_path, writer_process, caplog):
    """On a cluster's shared filesystem a temporary of another node may belong to a job running there (its pid
    means nothing here): kept, and named with its size in one warning per output; so is one of an older genoformer
    (no writer in its name). This host's killed writer's is removed."""
    out = tmp_path / "tokens"
    killed, killed_tmp = writer_process("dir", out)
    kill(killed)
    elsewhere = tmp_path / f".tokens.node17,cluster.{killed.pid}.k2j4h6g8.tmp"  # the same pid, dead here
    older = tmp_path / ".tokens.x1y2z3w4.tmp"
    for folder in (elsewhere, older):
        folder.mkdir()
        (folder / "shard.npy").write_bytes(bytes(3 * MIB))
    with caplog.at_level(logging.INFO, logger="genoformer.temps"):
        for run in ("1", "2"):
            with atomic_dir(out, marker="metrics.json") as tmp:
                (tmp / "metrics.json").write_text(run)
    assert hidden(tmp_path) == sorted([elsewhere.name, older.name])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{out}: kept 2 temporary copies that a writer on another host (or an older genoformer) may "
                        f"still be writing: {', '.join(f'{p.name} (3.0 MiB)' for p in sorted([elsewhere, older]))}; "
                        "remove them once no such run is alive"]
    assert f"removed {killed_tmp}" in caplog.text


def test_a_kill_between_the_renames_leaves_the_previous_output_and_no_temporary(tmp_path, writer_process):
    """A writer killed while the previous output was moved aside to .ds.old: the next call puts that back and
    removes the killed writer's temporary, even when the next call fails too."""
    out = tmp_path / "ds"
    with atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("1")
    killed, killed_tmp = writer_process("dir", out)
    kill(killed)
    os.replace(out, tmp_path / ".ds.old")  # where the killed writer's first rename would have left it
    with pytest.raises(RuntimeError), atomic_dir(out, marker="metrics.json") as tmp:
        raise RuntimeError("killed again")
    assert (out / "metrics.json").read_text() == "1"
    assert not killed_tmp.exists() and hidden(tmp_path) == []
