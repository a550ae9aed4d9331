"""The README's command blocks mean what the README says (issue 14: its own `tms lease create
fraud-detector …` failed, the name existed already, and `tms` was not on PATH).

- "Try it" has exactly two set-up commands: `make example` (the main job on the bundled example)
  and `make test` (the whole suite). `make example` runs for real in a copy of the test fixture
  with the Makefile and scripts (bootstrap replaced by a recorder, so the test never installs into
  the shared .venv): it bootstraps runtime-only, checks, renders each stack into out/<stack>/ and
  prints an `export PATH=…` line after which plain `tms` works. `make test` is read with `make -n`:
  the suite with no selection.
- The lease example is run as written (`tms` on PATH, a bare remote for `git push`) in a git copy of
  the fixture; its name collides with nothing in the bundled example, and `tms check` passes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT, copy_example

README = ROOT / "README.md"
NOW = "2026-11-22T00:00:00Z"


def blocks(section: str) -> list[str]:
    text = README.read_text()
    body = re.search(rf"(?ms)^## {re.escape(section)}\n(.*?)(?=^## )", text)
    assert body, f"README has no '## {section}' section"
    return [b.strip() for b in re.findall(r"(?ms)^ *```bash\n(.*?)^ *```", body.group(1))]


def env_with_tms() -> dict[str, str]:
    return {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com"}


def test_readme_has_exactly_two_setup_commands() -> None:
    assert blocks("Try it") == ["make example", "make test"]


def test_make_example_means_check_render_and_a_path_line(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fork")
    shutil.copy2(ROOT / "Makefile", repo / "Makefile")
    (repo / "scripts").mkdir()
    record = tmp_path / "bootstrap-args"
    (repo / "scripts" / "bootstrap.sh").write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    (repo / "scripts" / "bootstrap.sh").chmod(0o755)
    (repo / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    # A second stack renders into its own folder (README: "A second Pulumi.<stack>.yaml …").
    shutil.copy2(repo / "Pulumi.example.yaml", repo / "Pulumi.staging.yaml")
    out = subprocess.run(["make", "example"], cwd=repo, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in env_with_tms().items() if k != "MAKEFLAGS"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert record.read_text().split() == ["runtime"]  # runtime dependencies only, not the dev extras
    for stack in ("example", "staging"):
        assert len(list((repo / "out" / stack).rglob("Deployment-*.yaml"))) == 5, stack
    path_lines = [line.strip() for line in out.stdout.splitlines() if line.strip().startswith("export PATH=")]
    assert len(path_lines) == 1, out.stdout
    # The printed line, run in a shell, puts this fork's tms first on PATH.
    after = subprocess.run(["bash", "-c", path_lines[0].split("    (")[0] + " && command -v tms && tms --version"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[0] == str(repo / ".venv" / "bin" / "tms")
    assert after.stdout.splitlines()[1].startswith("tms ")


def test_make_test_means_the_whole_suite() -> None:
    # Under .ci/run this test itself runs inside `make test`: a nested make prints
    # "Entering/Leaving directory" lines, so ask for the recipe without them.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(["make", "--no-print-directory", "-n", "test"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1].strip() == ".venv/bin/python -m pytest"  # no paths, -k or -m: everything
    assert "scripts/install-test-deps.sh" in out.stdout and "scripts/bootstrap.sh" in out.stdout
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'(?m)^testpaths = \["tests"\]$', pyproject)
    assert not re.search(r"(?m)^addopts = .*(-m|-k|--deselect|--ignore)", pyproject)


def lease_block() -> str:
    (block,) = [b for b in blocks("How a team uses it") if re.search(r"(?m)^\s*tms lease create ", b)]
    return block


def created_name(lines: list[str]) -> str:
    created = [m.group(1) for line in lines if (m := re.match(r"tms lease create ([a-z0-9-]+) ", line))]
    assert len(created) == 1, lines
    return created[0]


def review_block() -> str:
    (block,) = [b for b in blocks("How a team uses it") if "scripts/trusted-review.sh" in b]
    return block


def test_readme_lease_example_runs_as_written(tmp_path: Path) -> None:
    block = lease_block()
    lines = [line.strip() for line in block.replace("\\\n", " ").splitlines()]
    name = created_name(lines)
    repo = copy_example(tmp_path / "fleet")
    # The name must not collide with the bundled example (a lease or any of its aliases).
    taken = {p.stem for p in (repo / "leases").glob("*.yaml")}
    assert name not in taken
    assert not any(re.search(rf"\b{re.escape(name)}\b", p.read_text()) for p in (repo / "leases").glob("*.yaml"))
    remote = tmp_path / "origin.git"
    env = env_with_tms()
    setup = (f"git init -q --bare {remote} && git init -q -b main . && git add -A && git commit -qm example "
             f"&& git remote add origin {remote} && git push -q -u origin main")
    subprocess.run(["bash", "-c", setup], cwd=repo, env=env, check=True, capture_output=True, timeout=60)
    out = subprocess.run(["bash", "-ec", "\n".join(lines)], cwd=repo, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=repo, capture_output=True, text=True,
                            check=True).stdout.strip()
    assert branch != "main"  # a pull request's branch, pushed with its upstream set
    pushed = subprocess.run(["git", "--git-dir", str(remote), "show", "--stat", branch], capture_output=True,
                            text=True, check=True).stdout
    assert f"lease {name}" in pushed and f"leases/{name}.yaml" in pushed
    check = subprocess.run(["tms", "check", "--now", NOW], cwd=repo, env=env, capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_readme_fork_emptied_then_one_lease_passes_review(tmp_path: Path) -> None:
    """The admin's path as the README says it: rename the stack file, delete the example leases and
    pools with the README's command; then the engineer's lease block; `tms check` passes at each step,
    and the README's review block (scripts/trusted-review.sh, as review runs it) passes and posts a
    plan with the one lease added, in the renamed stack's namespace."""
    text = " ".join(README.read_text().split())
    empty = re.search(r"`(touch leases/\.gitkeep pools/\.gitkeep && git add leases/\.gitkeep pools/\.gitkeep "
                      r"&& git rm -q leases/\*\.yaml pools/\*\.yaml)`", text)
    assert empty, "README no longer says how to delete the example leases and pools"
    assert "renames `Pulumi.example.yaml` to `Pulumi.<stack>.yaml`" in text
    block = lease_block()
    lines = [line.strip() for line in block.replace("\\\n", " ").splitlines()]
    name = created_name(lines)
    # A fork: the example data plus the tool's code and the review script (the base's code runs).
    repo = copy_example(tmp_path / "fork")
    shutil.copytree(ROOT / "tms_stack", repo / "tms_stack", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "trusted-review.sh", repo / "scripts" / "trusted-review.sh")
    remote = tmp_path / "origin.git"
    env = env_with_tms()

    def run(command: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(["bash", "-ec", command], cwd=repo, env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, f"{command}\n{out.stdout}\n{out.stderr}"
        return out

    run(f"git init -q --bare {remote} && git init -q -b main . && git add -A && git commit -qm example "
        f"&& git remote add origin {remote}")
    run("git mv Pulumi.example.yaml Pulumi.prod.yaml && sed -i 's/namespace: triton/namespace: ml-serving/' "
        "Pulumi.prod.yaml")
    run(empty.group(1) + f" && tms check --now {NOW}")
    # The recipe itself keeps both folders in git, staged with the deletions (issue 26: the
    # .gitkeep files were left untracked, and a plain `git commit` dropped the folders).
    assert run("git ls-files leases pools").stdout.split() == ["leases/.gitkeep", "pools/.gitkeep"]
    run("git commit -qam 'empty template' && git push -q -u origin main")  # -a: the stack file's edit
    assert run("git status --porcelain").stdout == ""
    assert not list((repo / "leases").glob("*.yaml")) and not list((repo / "pools").glob("*.yaml"))
    run("\n".join(lines))
    assert run("git status --porcelain").stdout == ""  # the block committed (and pushed) the lease
    run(f"tms check --now {NOW}")
    run(review_block())
    plan = (tmp_path / "review" / "plan.md").read_text()
    assert (tmp_path / "review" / "exit-code").read_text().strip() == "0"
    assert "1 lease(s) added, 0 changed, 0 removed" in plan and f"`{name}`" in plan, plan
    assert f"Deployment/ml-serving/{name}" in plan and "Admin-owned" not in plan, plan


# --- claims that can be checked (issue 26) ---------------------------------------------------------

def test_readme_links_resolve() -> None:
    text = README.read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert not missing, missing
    # Every document under docs/ is reachable from the README.
    linked = {link for link in links if link.startswith("docs/")}
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} - linked <= {
        "docs/security.md", "docs/check-json.md"} | linked


def test_readme_commands_exist_with_their_options() -> None:
    """The Commands table: every `tms ...` is a command of the tree, with options it has."""
    import typer

    from tms_stack.cli import app

    root = typer.main.get_command(app)
    table = README.read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"(?m)^\| (.+?) \| .+ \|$", table)[2:]  # header and rule
    checked = 0
    for cell in cells:
        for usage in re.findall(r"`(tms [^`]+)`", cell):
            words = usage.replace("\\|", "|").split()[1:]
            if any("/" in w for w in words[:3]):
                continue  # `tms lease create/list/...`: the verbs, checked below
            cmd = root
            while words and getattr(cmd, "commands", None) and words[0] in cmd.commands:
                cmd = cmd.commands[words.pop(0)]
            if getattr(cmd, "commands", None) is not None:
                assert not words or words[0].startswith("-"), usage
                continue
            options = {o for p in cmd.params for o in getattr(p, "opts", [])} | {"--help", "-h"}
            used = {w.strip("[]").split("=")[0] for w in words if w.strip("[").startswith("-")}
            assert used <= options, (usage, used - options)
            checked += 1
        for verbs in re.findall(r"`tms ([a-z]+(?: [a-z]+)?) ((?:[a-z-]+/)+[a-z-]+)`", cell):
            group, names = verbs
            for name in names.split("/"):
                assert _command(root, [*group.split(), name]) is not None, (group, name)
    assert checked >= 8


def _command(root: object, words: list[str]) -> object | None:
    cmd = root
    for word in words:
        subs = getattr(cmd, "commands", None)
        if not subs or word not in subs:
            return None
        cmd = subs[word]
    return cmd


def test_readme_lists_what_make_test_installs() -> None:
    """Every Debian package that scripts/deps.d installs, every Go-built piece and the Go version
    tools/build_tools.py needs are in the README's list (issue 26: it named half of them)."""
    text = " ".join(README.read_text().split())
    scripts = {p.name: p.read_text() for p in sorted((ROOT / "scripts" / "deps.d").glob("*.sh"))}
    apt = set()
    for body in scripts.values():
        apt |= set(re.findall(r"apt-get install [^\n]*--no-install-recommends ([a-z0-9-]+)$", body, re.M))
        for group in re.findall(r"pkgs=\(([^)]*)\)", body):
            apt |= set(group.split())
    assert {"prometheus", "containerd", "mmdebstrap"} <= apt, apt
    for package in sorted(apt):
        assert f"`{package}`" in text, package
    assert "apt-get" in text
    go_built = {"40-actionlint.sh": "actionlint", "30-s3server.sh": "versitygw"}
    for script, name in go_built.items():
        assert "go install" in scripts[script] and name in text, name
    e2e = scripts["50-e2e-tools.sh"]
    for piece, words in {"kube-apiserver": "`kube-apiserver`", "etcd": "etcd", "kwok": "kwok",
                         "pulumi": "Pulumi engine"}.items():
        assert piece in e2e and words in text, piece
    node = scripts["60-node.sh"] + (ROOT / "tools" / "build_node.py").read_text()
    for piece in ("kubelet", "kube-proxy"):
        assert piece in node and f"`{piece}`" in text, piece
    assert "build_images.py" in scripts["60-node.sh"] and "tools/build_images.py" in text
    needed = re.search(r"a Go toolchain >= (\d+\.\d+)", (ROOT / "tools" / "build_tools.py").read_text())
    assert needed and f"Go {needed.group(1)} or newer" in text


def test_readme_says_when_the_engine_tests_run() -> None:
    """They build the engine from ../shared/vendor (tests/e2e/conftest.py): skipped only where
    neither the proxy nor the vendored sources have it, never "unless TMS_PULUMI_BIN_DIR is set"."""
    text = " ".join(README.read_text().split())
    conftest = (ROOT / "tests" / "e2e" / "conftest.py").read_text()
    assert "../shared/vendor" in conftest and "no vendored Pulumi sources" in conftest
    assert "`../shared/vendor`" in text and "skipped unless" not in text
    assert "about 15 minutes" not in text and "took 60 minutes cold on 2 cores in CI" in text
