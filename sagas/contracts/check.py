"""`sagas check`: everything about the message contracts that can be verified offline.

1. every ``.avsc`` parses (fastavro), is named after its record, and documents itself;
2. every typed message class agrees with its schema (`sagas.contracts.agreement`), and
   every schema has a class;
3. every schema is compatible with all its released versions under the chosen mode
   (`sagas.contracts.compat`), and no released schema has disappeared;
4. every usage (what handlers and definitions read) names an existing type and fields
   (`sagas.contracts.usages`);
5. when given the folder of the generated message modules, it holds exactly what
   `sagas codegen` writes from these schemas (`sagas.contracts.codegen`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sagas.contracts.agreement import disagreements
from sagas.contracts.avro_types import Node, normalize, walk_named
from sagas.contracts.classmap import ClassMap
from sagas.contracts.codegen import generate
from sagas.contracts.codegen.files import changes
from sagas.contracts.compat import Mode, check_mode
from sagas.contracts.errors import SchemaError
from sagas.contracts.schemas import SchemaFile, SchemaTree, load_tree
from sagas.contracts.usages import Usage, check_usages


@dataclass(frozen=True)
class Problem:
    """One thing `sagas check` found wrong.

    Attributes:
        check: ``schema``, ``docs``, ``class``, ``compatibility``, ``usage`` or
            ``generated``.
        schema: the schema (full name, or file when it did not parse) concerned; for
            ``generated``, the generated file.
        field: the field path concerned, when there is one.
        message: what is wrong, for a person.
    """

    check: str
    schema: str
    field: str | None
    message: str


@dataclass
class Report:
    """The outcome of one check run."""

    root: Path
    mode: Mode
    problems: list[Problem] = field(default_factory=list)
    schemas: int = 0
    classes: int = 0
    released_versions: int = 0
    unreleased: list[str] = field(default_factory=list)
    usages: int = 0
    generated: int | None = None

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def run_check(
    root: Path,
    classes: ClassMap,
    mode: Mode = Mode.BACKWARD,
    usages: Iterable[Usage] = (),
    generated: Path | None = None,
    known: Mapping[str, SchemaFile] | None = None,
) -> tuple[Report, SchemaTree]:
    """Check the schemas under ``root`` against ``classes`` and ``usages``, and against
    the folder of generated modules ``generated`` when given.

    ``known``: schemas defined elsewhere (the framework's own) that usages may name;
    they are not checked here.

    Returns the report and the loaded tree (for `sagas.contracts.schemas.release`).
    """
    tree = load_tree(root)
    report = Report(root=root, mode=mode, schemas=len(tree.current))
    report.problems += [Problem("schema", "", None, str(error)) for error in tree.errors]
    nodes = {name: normalize(schema.raw) for name, schema in tree.current.items()}
    for name, node in sorted(nodes.items()):
        report.problems += _docs(name, node)
    report.problems += _classes(tree, nodes, classes, report)
    report.problems += _compatibility(tree, mode, report)
    usage_list = list(usages)
    report.usages = len(usage_list)
    for problem in check_usages(usage_list, {**(known or {}), **tree.current}):
        where = f" (read by {problem.usage.where})" if problem.usage.where else ""
        report.problems.append(
            Problem("usage", problem.usage.type, problem.field, problem.message + where)
        )
    if generated is not None and not tree.errors:  # a broken tree is reported above
        report.problems += _generated(tree, generated, report)
    return report, tree


def _docs(name: str, node: Node) -> list[Problem]:
    found: list[Problem] = []
    for named in walk_named(node):
        if not named.doc:
            found.append(Problem("docs", name, None, f"{named.describe()} has no doc"))
        for avro in named.fields:
            if not avro.doc:
                found.append(Problem("docs", name, avro.name, f"field of {named.name} has no doc"))
    return found


def _classes(
    tree: SchemaTree, nodes: dict[str, Node], classes: ClassMap, report: Report
) -> list[Problem]:
    found: list[Problem] = []
    for name, cls in classes.items():
        report.classes += 1
        node = nodes.get(name)
        if node is None:
            found.append(Problem("class", name, None, f"{cls.__qualname__} has no schema file"))
            continue
        for path, message in disagreements(cls, node):
            found.append(Problem("class", name, path or None, message))
    for name in sorted(tree.current.keys() - set(classes)):
        found.append(Problem("class", name, None, "schema has no message class"))
    return found


def _compatibility(tree: SchemaTree, mode: Mode, report: Report) -> list[Problem]:
    found: list[Problem] = []
    for name, schema in sorted(tree.current.items()):
        versions = tree.history.get(name, [])
        report.released_versions += len(versions)
        if not versions:
            report.unreleased.append(name)
        for number, released in versions:
            for direction, issue in check_mode(schema.raw, released.raw, mode):
                if direction == "backward":
                    lead = f"the current schema cannot read data written with v{number}"
                else:
                    lead = f"readers on v{number} cannot read data written with the current schema"
                found.append(
                    Problem("compatibility", name, issue.path or None, f"{lead}: {issue.message}")
                )
    for name in sorted(tree.history.keys() - tree.current.keys()):
        found.append(
            Problem("compatibility", name, None, "released schema was deleted; restore it")
        )
    return found


def _generated(tree: SchemaTree, folder: Path, report: Report) -> list[Problem]:
    try:
        sources = generate(tree)
    except SchemaError as exc:
        return [
            Problem("generated", str(folder), None, f"cannot generate the classes: {exc.message}")
        ]
    report.generated = len(sources)
    return [
        Problem("generated", change.shown(), None, change.describe())
        for change in changes(folder, sources)
    ]
