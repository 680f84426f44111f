import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._fields import hide_fields, parse_path

OBJ = {'metadata': {'managedFields': [1], 'annotations': {'kubemacpool.io/transaction-timestamp': 't', 'a': 'b'}},
       'spec': {'template': {'spec': {'volumes': [{'name': 'v0'}, {'name': 'v1'}]}}}}


@pytest.mark.parametrize('path, tokens', [
    ('metadata.managedFields', ['metadata', 'managedFields']),
    ('metadata.annotations[kubemacpool.io/transaction-timestamp]',
     ['metadata', 'annotations', 'kubemacpool.io/transaction-timestamp']),
    ('spec.volumes[0].name', ['spec', 'volumes', '0', 'name']),
])
def test_parse_path(path, tokens):
    assert parse_path(path) == tokens


def test_hide_fields_copies_and_ignores_missing_paths():
    out = hide_fields(OBJ, ['metadata.managedFields', 'metadata.annotations[kubemacpool.io/transaction-timestamp]',
                            'spec.template.spec.volumes[0].name', 'status.nothing', 'spec.template.spec.volumes[9]'])
    assert out['metadata'] == {'annotations': {'a': 'b'}}
    # As kubernetes.core: what the removal empties goes too.
    assert out['spec']['template']['spec']['volumes'] == [{'name': 'v1'}]
    assert 'managedFields' in OBJ['metadata']


def test_hiding_the_only_annotation_leaves_no_empty_map():
    obj = {'metadata': {'name': 'x', 'annotations': {'kubemacpool.io/transaction-timestamp': 't'}}}
    assert hide_fields(obj, ['metadata.annotations[kubemacpool.io/transaction-timestamp]']) == {'metadata': {'name': 'x'}}
