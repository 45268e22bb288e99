from __future__ import annotations

import subprocess

import pytest

from bench import trees


def test_working_tree_runs_in_place(tmp_path):
    assert trees._tree("HEAD", tmp_path) == trees.ROOT
    assert trees._tree(".", tmp_path) == trees.ROOT
    assert not any(tmp_path.iterdir())  # no worktree made for the checkout itself


@pytest.mark.slow
def test_compare_a_worktree_with_the_checkout(tmp_path):
    doc = trees.compare(["HEAD~1", "HEAD"], repeats=1)
    for rev in ("HEAD~1", "HEAD"):
        for photo in ("astronaut", "grace_hopper"):
            r = doc[rev][photo]
            assert 0 < r["total_s"] < 600 and r["peak_rss_mb"] > 100
            assert r["psnr_final"] > 20
    listed = subprocess.run(["git", "-C", str(trees.ROOT), "worktree", "list"], capture_output=True, text=True)
    assert not any("wt_HEAD" in line for line in listed.stdout.splitlines())  # removed again
