"""_list_stream: a list body decoded item by item while it arrives gives what json.loads gives, from any chunking;
Api.list(each=...) keeps only what ``each`` returns, pages and retries as a whole-body list does."""
import json
import random

import pytest
import urllib3

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._list_stream import ListDecodeError, decode_list

from ..kube_fakes import FakePool, make_client, response

VMIS = '/apis/kubevirt.io/v1/virtualmachineinstances'


def item(i):
    # strings with escapes, brackets and multi-byte characters, numbers of every kind, nesting
    return {'metadata': {'name': 'vm-%d' % i, 'namespace': 'ns', 'managedFields': [{'fieldsV1': {'f:status': {}}}]},
            'status': {'phase': 'Running', 'note': u'caf\u00e9 \u2713 "}]\\' * (i % 4), 'n': i, 'f': -1.5e-3 * i,
                       'big': 10 ** 20 + i, 'flags': [True, False, None], 'empty': {}, 'list': []}}


def document(count, metadata_first=False):
    meta = {'resourceVersion': '42', 'continue': 'tok', 'remainingItemCount': 7}
    pairs = [('apiVersion', 'kubevirt.io/v1'), ('items', [item(i) for i in range(count)]),
             ('kind', 'VirtualMachineInstanceList'), ('metadata', meta)]
    if metadata_first:  # built-in kinds (Go structs) put metadata before items; CRs (unstructured, sorted) after
        pairs = [pairs[2], pairs[0], pairs[3], pairs[1]]
    return dict(pairs)


def chunked(body, size):
    return [body[i:i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize('size', [1, 2, 3, 5, 64, 4093, 1 << 20])
@pytest.mark.parametrize('indent', [None, 2])
@pytest.mark.parametrize('metadata_first', [False, True])
def test_same_result_as_json_loads_for_any_chunking(size, indent, metadata_first):
    doc = document(40, metadata_first)
    body = json.dumps(doc, indent=indent, ensure_ascii=False).encode('utf-8')
    meta, items = decode_list(chunked(body, size), lambda obj: obj)
    expected = json.loads(body)
    assert items == expected.pop('items')
    assert meta == expected


def test_random_chunk_boundaries_and_trimming():
    rand = random.Random(7)
    doc = document(200)
    body = json.dumps(doc).encode('utf-8')
    cuts = sorted(rand.sample(range(1, len(body)), 500))
    chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    seen = []
    meta, items = decode_list(chunks, lambda obj: seen.append(obj['status']['n']) or obj['metadata']['name'])
    assert items == ['vm-%d' % i for i in range(200)]
    assert seen == list(range(200))  # each item decoded once, in order
    assert meta['metadata'] == {'resourceVersion': '42', 'continue': 'tok', 'remainingItemCount': 7}


def test_a_number_split_across_chunks_is_read_whole():
    meta, items = decode_list([b'{"items": [12', b'34, 5', b'6], "metadata": {"remainingItemCount": 1', b'0}}'],
                              lambda x: x)
    assert items == [1234, 56]
    assert meta == {'metadata': {'remainingItemCount': 10}}


@pytest.mark.parametrize('body,items', [(b'{}', []), (b'{"items": null}', []), (b'{"items": []}', []),
                                        (b' {"items" : [ {"a":1} , {"a":2} ] } \n', [1, 2])])
def test_empty_null_and_spaced_lists(body, items):
    assert decode_list(chunked(body, 3), lambda obj: obj['a'])[1] == items


@pytest.mark.parametrize('body', [b'', b'<html>busy</html>', b'[1, 2]', b'{"items": [1, 2',
                                  b'{"items": [1] "kind": "x"}', b'{"items": []}}', b'{"items": [1,]}', b'{1: 2}'])
def test_bodies_that_are_not_a_complete_list_object_raise(body):
    with pytest.raises(ListDecodeError):
        decode_list(chunked(body, 2), lambda obj: obj)


def vmi_page(names, token=None):
    return {'kind': 'VirtualMachineInstanceList', 'metadata': {'resourceVersion': '9', 'continue': token},
            'items': [{'metadata': {'name': n, 'namespace': 'ns'}, 'spec': {'big': 'x' * 100}} for n in names]}


def test_api_list_each_pages_and_keeps_only_what_each_returns():
    pool = FakePool().on('GET', VMIS, (200, vmi_page(['a', 'b'], 'c1')), (200, vmi_page(['c'])))
    items, version = Api(make_client(pool), page_size=2).list(_kinds.VMI, each=lambda obj: obj['metadata']['name'])
    assert items == ['a', 'b', 'c']
    assert version == '9'
    assert [r.query.get('continue') for r in pool.requests] == [None, 'c1']


class Broken(urllib3.HTTPResponse):
    """A 200 whose connection drops after ``cut`` bytes of the body."""

    def __init__(self, body, cut):
        import io
        super().__init__(body=io.BytesIO(body[:cut]), status=200, headers={'Content-Type': 'application/json'},
                         preload_content=False)

    def stream(self, amt=2 ** 16, decode_content=None):
        yield from super().stream(amt, decode_content)
        raise urllib3.exceptions.ProtocolError('Connection broken: IncompleteRead')


def test_a_body_cut_off_midway_is_read_again_without_duplicates():
    body = json.dumps(vmi_page(['a', 'b', 'c'])).encode()
    pool = FakePool().on('GET', VMIS, Broken(body, len(body) // 2), (200, vmi_page(['a', 'b', 'c'])))
    client = make_client(pool)
    items, _version = Api(client).list(_kinds.VMI, each=lambda obj: obj['metadata']['name'])
    assert items == ['a', 'b', 'c']
    assert len(pool.requests) == 2 and len(client.slept) == 1


def test_a_200_that_is_not_a_list_says_so():
    pool = FakePool().on('GET', VMIS, response(200, raw=b'<html>proxy login</html>', headers={'Content-Type': 'text/html'}))
    with pytest.raises(ApiError) as err:
        Api(make_client(pool)).list(_kinds.VMI, each=lambda obj: obj)
    assert 'not JSON' in err.value.msg and 'check host' in err.value.msg
