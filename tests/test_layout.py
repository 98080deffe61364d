"""The library's folders are its layers: a module imports only its own layer, the layers before it and the plumbing,
so reading the packages in order never meets a name from further on."""

import ast
from pathlib import Path

import mrishift

LAYERS = ["data", "models", "adaptation", "evaluation", "training", "analysis", "reporting"]
PLUMBING = {"io", "logs", "usage", "console", "seeding", "jobenv"}
STUDY = {"config", "plan", "cost", "cluster", "cli"}  # on top: they may use every layer
PACKAGE = Path(mrishift.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The mrishift modules a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mrishift")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mrishift"):
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def layer_of(module: str) -> str:
    """'mrishift.adaptation.strategies' -> 'adaptation'; 'mrishift.io' -> 'io'; 'mrishift.__version__' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and not parts[1].startswith("__") else ""


def test_every_module_lives_in_a_layer_the_plumbing_or_the_study():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == PLUMBING | STUDY
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)
    for layer in LAYERS:  # each package says what its layer is for
        docstring = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert docstring and len(docstring.split()) >= 15, layer


def test_no_module_imports_a_later_layer_or_the_study():
    back_arrows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if own in STUDY or own == "__init__":
            continue
        allowed = PLUMBING | ({""} if own in PLUMBING else set(LAYERS[:LAYERS.index(own) + 1]) | {""})
        back_arrows += [f"{path.relative_to(PACKAGE)} imports {m}" for m in imported_modules(path)
                        if layer_of(m) not in allowed]
    assert back_arrows == []


def test_no_library_module_is_over_about_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 420}
    assert long == {}
