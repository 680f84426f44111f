"""Unit tests of the emulator's building blocks (no server): schema, selectors, patches, field manager, store."""
import pytest

from . import fieldmanager, schema, selectors
from .patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from .resources import ResourceType
from .store import Gone, Store

SCHEMA = {"type": "object", "properties": {
    "spec": {"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True},
        "note": {"type": "string", "nullable": True},
        "mode": {"type": "string", "default": "auto", "enum": ["auto", "manual"]},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "required": ["name"], "properties": {
                      "name": {"type": "string"}, "number": {"type": "integer"}}}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "disks": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }}}}


def run(obj, prune=True):
    return schema.Validator(prune=prune).run(obj, SCHEMA)


def test_schema_types_defaults_and_pruning():
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a", "bogus": 1},
           "spec": {"port": "http", "note": None, "extra": {"anything": [1]}, "labels": {"a": "b"}, "junk": 1}}
    res = run(obj)
    assert res.errors == []
    assert res.unknown == ["metadata.bogus", "spec.junk"]
    assert obj["spec"] == {"port": "http", "note": None, "extra": {"anything": [1]}, "labels": {"a": "b"},
                           "mode": "auto"}
    assert obj["metadata"] == {"name": "a"}


def test_schema_errors_are_shaped_like_field_errors():
    obj = {"spec": {"port": 1.5, "mode": "sometimes", "labels": {"a": 1},
                    "ports": [{"name": "a"}, {"name": "a"}, {"number": 3}], "tags": ["x", "x"]}}
    errs = {(e["field"], e["reason"]): e["message"] for e in run(obj).errors}
    assert errs[("spec.port", "FieldValueTypeInvalid")] == ('Invalid value: "number": spec.port in body must be of '
                                                            'type integer,string: "number"')
    assert errs[("spec.mode", "FieldValueNotSupported")] == ('Unsupported value: "sometimes": supported values: '
                                                             '"auto", "manual"')
    assert ("spec.labels.a", "FieldValueTypeInvalid") in errs
    assert errs[("spec.ports[2].name", "FieldValueRequired")] == "Required value"
    assert errs[("spec.ports[1]", "FieldValueDuplicate")] == 'Duplicate value: {"name":"a"}'
    assert errs[("spec.tags[1]", "FieldValueDuplicate")] == 'Duplicate value: "x"'


def test_name_validation():
    assert schema.validate_name("ok-name.example") == []
    assert schema.validate_name("Bad_Name")[0]["message"].startswith('Invalid value: "Bad_Name": a lowercase RFC 1123')
    assert schema.validate_name("has.dot", label=True)


def test_metadata_label_and_annotation_rules():
    assert schema.validate_metadata({"labels": {"app.kubernetes.io/name": "web", "empty": ""}}) == []
    causes = schema.validate_metadata({"labels": {"bad key": "x", "k": "has space", "long": "v" * 64},
                                       "annotations": {"a": "x" * (256 * 1024)}})
    msgs = [c["message"] for c in causes]
    assert any(m.startswith('Invalid value: "bad key": name part must consist') for m in msgs)
    assert any(m.startswith('Invalid value: "has space": a valid label must be an empty string') for m in msgs)
    assert any(m.endswith("must be no more than 63 characters") for m in msgs)
    assert causes[-1] == {"reason": "FieldValueTooLong", "field": "metadata.annotations",
                          "message": "Too long: may not be more than 262144 bytes"}


def test_label_selector_parsing_and_errors():
    reqs = selectors.parse_label_selector("a=b,c!=d,e in (x, y),f notin (z),g,!h")
    assert selectors.match_labels(reqs, {"a": "b", "e": "y", "g": ""})
    assert not selectors.match_labels(reqs, {"a": "b", "e": "y", "g": "", "h": "1"})
    assert not selectors.match_labels(reqs, {"a": "b", "c": "d", "e": "x", "g": ""})
    with pytest.raises(selectors.SelectorError):
        selectors.parse_label_selector("a in x")
    crd = ResourceType("kubevirt.io", ["v1"], "VirtualMachine", "virtualmachines", crd_name="vms")
    with pytest.raises(selectors.SelectorError) as exc:
        selectors.parse_field_selector("spec.running=true", crd)
    assert "is not a known field selector" in str(exc.value)
    pods = ResourceType("", ["v1"], "Pod", "pods")
    reqs = selectors.parse_field_selector("spec.nodeName=n1,status.phase!=Failed", pods)
    assert selectors.match_fields(reqs, {"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})


def test_patches():
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert merge_patch(doc, {"a": {"b": None, "e": 2}, "d": None}) == {"a": {"c": [1, 2], "e": 2}}
    out = json_patch(doc, [{"op": "copy", "from": "/d", "path": "/f"}, {"op": "move", "from": "/a/c", "path": "/g"},
                           {"op": "add", "path": "/g/-", "value": 3}, {"op": "test", "path": "/f", "value": "x"}])
    assert out == {"a": {"b": 1}, "d": "x", "f": "x", "g": [1, 2, 3]}
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "remove", "path": "/nope"}])
    pod = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}
    out = strategic_merge_patch(pod, {"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "a",
                                                                                            "$patch": "delete"}]}})
    assert out == {"spec": {"containers": [{"name": "b", "image": "2"}]}}


def _apply(cur, body, manager, force=False):
    return fieldmanager.apply(cur, body, manager, force, "x/v1", "t", SCHEMA, False)


def test_apply_list_semantics_and_conflicts():
    base = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}}
    one = dict(base, spec={"ports": [{"name": "a", "number": 1}], "tags": ["t1"], "disks": [{"name": "d1"}]})
    obj = _apply(None, one, "one")
    two = dict(base, spec={"ports": [{"name": "b", "number": 2}], "tags": ["t2"]})
    obj = _apply(obj, two, "two")
    # list-type map and set merge; nobody conflicts on distinct keys/values.
    assert obj["spec"]["ports"] == [{"name": "a", "number": 1}, {"name": "b", "number": 2}]
    assert obj["spec"]["tags"] == ["t1", "t2"]
    # An unmarked CRD list is atomic: a different value from another manager conflicts.
    with pytest.raises(fieldmanager.ApplyConflict) as exc:
        _apply(obj, dict(base, spec={"disks": [{"name": "d2"}]}), "two")
    assert exc.value.conflicts == [("one", "x/v1", ".spec.disks")]
    two["spec"]["disks"] = [{"name": "d2"}]
    obj = _apply(obj, two, "two", force=True)
    assert obj["spec"]["disks"] == [{"name": "d2"}]
    # "one" stops applying its port: removed, because nobody else owns it.
    obj = _apply(obj, dict(base, spec={"tags": ["t1"]}), "one")
    assert obj["spec"]["ports"] == [{"name": "b", "number": 2}]
    managers = {e["manager"]: e for e in obj["metadata"]["managedFields"]}
    assert 'k:{"name":"b"}' in managers["two"]["fieldsV1"]["f:spec"]["f:ports"]
    # "two" stops applying everything but disks: its port and tag go, "one"'s tag stays.
    obj = _apply(obj, dict(base, spec={"disks": [{"name": "d2"}]}), "two")
    assert obj["spec"] == {"tags": ["t1"], "disks": [{"name": "d2"}], "ports": []}
    assert fieldmanager.from_fields_v1(fieldmanager.to_fields_v1({("f:a",), ("f:a", "f:b")})) == {("f:a",),
                                                                                                  ("f:a", "f:b")}


def test_store_watch_replay_and_gone():
    st = Store(history=3)
    for i in range(5):
        rv = st.next_rv()
        st.put(("", "configmaps"), {"metadata": {"name": "c%d" % i, "namespace": "n", "resourceVersion": str(rv)}},
               "ADDED")
    w = st.watch(("", "configmaps"), "n", st.rv - 2)
    assert [w.queue.get_nowait()[1]["metadata"]["name"] for _ in range(2)] == ["c3", "c4"]
    with pytest.raises(Gone):
        st.watch(("", "configmaps"), "n", st.rv - 4)
    assert [o["metadata"]["name"] for o in st.items(("", "configmaps"), "n")] == ["c0", "c1", "c2", "c3", "c4"]


def test_controller_workers_keep_each_object_on_one_worker_in_order():
    """Several workers (the remote host's virt-controller): one object's events and timers stay on one thread, in
    order; different objects are spread over the workers."""
    import threading
    from types import SimpleNamespace

    from .controllers import Controller

    class Recorder(Controller):
        name = "recorder"
        watches = (("x", "things"),)

        def setup(self):
            self.seen = []
            self.lock = threading.Lock()
            self.done = threading.Event()

        def reconcile(self, rkey, ns, name, etype, obj):
            with self.lock:
                self.seen.append((name, obj["n"], threading.current_thread().name))
            if obj["n"] == 2:
                self.after(0, self._timer, name, threading.current_thread().name)

        def _timer(self, name, worker):
            with self.lock:
                self.seen.append((name, "timer", threading.current_thread().name))
                if sum(1 for s in self.seen if s[1] == "timer") == 12:
                    self.done.set()

    listeners = []
    app = SimpleNamespace(api=None, timing="fast", store=SimpleNamespace(subscribe=listeners.append))
    rec = Recorder(app, workers=4)
    rec.start()
    try:
        for n in range(3):
            for i in range(12):
                listeners[0](("x", "things"), ("MODIFIED", {"metadata": {"name": "o%d" % i}, "n": n}, "ns", None, n))
        assert rec.done.wait(10)
    finally:
        rec.stop()
    assert rec.workers == 4
    threads = {}
    for i in range(12):
        mine = [s for s in rec.seen if s[0] == "o%d" % i]
        assert [s[1] for s in mine] == [0, 1, 2, "timer"]
        assert len({s[2] for s in mine}) == 1
        threads[mine[0][2]] = True
    assert len(threads) > 1
