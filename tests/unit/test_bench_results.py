import json

import kvnet
from kvnet.bench.results import envelope, read_result, summarize, write_result


def test_envelope_has_machine_version_and_date():
    data = envelope("demo", {"x": 1})
    assert data["benchmark"] == "demo"
    assert data["kvnet_version"] == kvnet.__version__
    assert data["results"] == {"x": 1}
    assert set(data["machine"]) >= {"nproc", "cpu_model", "kernel", "python"}
    assert data["machine"]["nproc"] >= 1
    assert data["date"].endswith("Z")


def test_summarize_median_min_max_stdev():
    s = summarize([3, 1, 2, 10])
    assert s == {"median": 2.5, "min": 1.0, "max": 10.0, "stdev": s["stdev"], "n": 4}
    assert round(s["stdev"], 3) == 4.082
    assert summarize([5])["stdev"] == 0.0
    assert summarize([])["n"] == 0 and summarize([])["median"] is None


def test_write_result_writes_json_and_markdown(tmp_path):
    data = envelope("demo", {"ops_per_s": 1234.5})
    path = write_result("demo", data, tmp_path)
    assert json.loads(path.read_text()) == data
    assert read_result("demo", tmp_path) == data
    md = (tmp_path / "demo.md").read_text()
    assert md.startswith("# demo") and "ops_per_s" in md
    write_result("demo", data, tmp_path, markdown="custom\n")
    assert (tmp_path / "demo.md").read_text() == "custom\n"
