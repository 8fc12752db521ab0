"""The layout's rules (docs/architecture.md, "Layers and packages"), read from the sources (ast) and setup.cfg.

Dependencies point one way: qmail may import supervise and ucspi; supervise may import
ucspi; ucspi's commands (ucspi/*.py) import only ucspi.runtime of ours; ucspi.runtime
imports nothing of ours outside itself; nothing shipped imports tests, bench or devtools.
Every import counts, at module level or inside a function. And every console script
setup.cfg registers names a module of ours that exists and has the function it names.
"""

import ast
import configparser
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("ucspi", "supervise", "qmail")
NOT_SHIPPED = ("tests", "bench", "devtools")
OURS = SHIPPED + NOT_SHIPPED


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, dotted name) of everything path imports, relative imports resolved; for
    `from X import a` the name is X.a (a may be a module or a name in X, either way the
    import depends on X and on anything a is)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[:len(package) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}" if base else alias.name)
                      for alias in node.names]
    return sorted(found)


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def forbidden(module: str, target: str) -> str | None:
    """Why module may not import target, or None when it may."""
    top = target.split(".")[0]
    if top not in OURS:
        return None  # the standard library or a dependency
    if top in NOT_SHIPPED:
        return f"shipped code imports the non-shipped {top}"
    if within(module, "ucspi.runtime"):
        if not within(target, "ucspi.runtime"):
            return "ucspi.runtime imports nothing of ours outside itself"
    elif within(module, "ucspi"):
        if not within(target, "ucspi.runtime"):
            return "ucspi's commands import only ucspi.runtime of ours"
    elif within(module, "supervise"):
        if top == "qmail":
            return "supervise may not import qmail"
    return None


def shipped_sources() -> list[Path]:
    return sorted(p for top in SHIPPED for p in (ROOT / top).rglob("*.py"))


def test_shipped_modules_import_only_what_the_layering_allows():
    sources = shipped_sources()
    assert len(sources) > 50, sources  # the walk found the tree
    violations = []
    for path in sources:
        module = module_name(path)
        for line, target in imported(path):
            why = forbidden(module, target)
            if why:
                violations.append(f"{path.relative_to(ROOT)}:{line}: imports {target}: {why}")
    assert violations == [], "\n".join(violations)


@pytest.mark.parametrize("module, target, allowed", [
    ("ucspi.runtime.launch", "ucspi.runtime.privileges", True),
    ("ucspi.runtime.launch", "ucspi.tcpserver", False),
    ("ucspi.runtime.launch", "ucspi.__version__", False),
    ("ucspi.runtime.launch", "supervise.svscan", False),
    ("ucspi.tcpserver", "ucspi.runtime.server_loop", True),
    ("ucspi.unixserver", "ucspi.tcpserver", False),
    ("ucspi.tcpserver", "qmail.queue", False),
    ("supervise.svscan", "ucspi.runtime.launch", True),
    ("supervise.svscan", "ucspi.tcpserver", True),
    ("supervise.svc", "qmail.tools.install_services", False),
    ("qmail.queue.qmail_send", "supervise.svc", True),
    ("qmail.queue.qmail_send", "ucspi.runtime.launch", True),
    ("qmail.queue.qmail_send", "tests.support", False),
    ("supervise.svc", "bench.bench_qmail", False),
    ("ucspi.runtime.launch", "devtools.harness", False),
    ("qmail.queue.qmail_send", "os.path", True),
    ("ucspi.runtime.dns_lookup", "dns.resolver", True),
])
def test_the_rules_themselves(module, target, allowed):
    assert (forbidden(module, target) is None) == allowed


def test_imports_are_found_inside_functions_and_relative_ones_resolved(tmp_path):
    source = tmp_path / "supervise" / "svc.py"
    source.parent.mkdir()
    source.write_text("import os\n\ndef f():\n    from qmail.queue import x\n"
                      "    from . import svstat\n    from .. import tests\n")
    assert imported(source, tmp_path) == [(1, "os"), (4, "qmail.queue.x"), (5, "supervise.svstat"),
                                (6, "tests")]


def console_scripts() -> list[tuple[str, str, str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    found = []
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, _, target = (part.strip() for part in line.partition("="))
        module, _, function = target.partition(":")
        found.append((name, module, function))
    return found


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def defines(path: Path, name: str) -> bool:
    """Whether the module binds name at its top level (def, assignment or import)."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name) == name for a in node.names):
            return True
    return False


def test_setup_cfg_registers_the_commands():
    scripts = console_scripts()
    assert len(scripts) > 60, scripts
    assert len({name for name, _, _ in scripts}) == len(scripts), "a name registered twice"


@pytest.mark.parametrize("name, module, function", console_scripts(),
                         ids=[name for name, _, _ in console_scripts()])
def test_each_console_script_names_a_module_with_its_function(name, module, function):
    assert module.split(".")[0] in SHIPPED, f"{name} = {module}: not a shipped package"
    path = module_file(module)
    assert path is not None, f"{name} = {module}:{function}: no such module"
    assert function == "main", f"{name} = {module}:{function}: entry points are main"
    assert defines(path, function), f"{name}: {path.relative_to(ROOT)} has no {function}"


def test_setup_cfg_ships_none_of_the_developer_directories():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    include = config["options.packages.find"]["include"].split()
    assert include, "setup.cfg names what it ships"
    for pattern in include:
        assert pattern.split(".")[0] in SHIPPED, pattern
        for name in NOT_SHIPPED:
            assert not fnmatch.fnmatch(name, pattern) and not fnmatch.fnmatch(f"{name}.x", pattern)
