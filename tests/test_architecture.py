"""The shape of the code: no import cycle inside scoretool/, no module over the size limit."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cycle_finder_finds_a_cycle():
    tool = _graph_tool()
    assert tool.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert tool.cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_scoretool():
    tool = _graph_tool()
    edges = tool.graph()
    assert "scoretool.api" in edges and "scoretool.stages.music" in edges["scoretool.api"]
    assert tool.cycles(edges) == []


def test_no_module_over_the_size_limit():
    assert _graph_tool().oversized() == {}
