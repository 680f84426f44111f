"""The upstream data under tests/fixtures is the pinned data: tests/fixtures/kubevirt-api/PROVENANCE.yml.

Every file of tests/fixtures/kubevirt-api and tests/fixtures/install is pinned (sha256, release, commit), the README
table next to the pins shows the same hashes, and the data itself says it is the pinned release: the operator
manifests' image tags and version variables, and for the CRDs schema fields that the pinned release has and its
neighbours do not (RELEASE_MARKERS, found by comparing upstream's generated schemas of KubeVirt v1.8.4, v1.9.0 and
the main branch after it, and of CDI v1.65.0 and v1.66.0). Swapping in another release and re-hashing it fails here
until the markers of that release are written down too.
"""
import functools
import hashlib
import re
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parents[2] / 'tests' / 'fixtures'
PINS = FIXTURES / 'kubevirt-api' / 'PROVENANCE.yml'
README = FIXTURES / 'kubevirt-api' / 'README.md'
PINNED_DIRS = ('kubevirt-api', 'install')
NOT_DATA = {'kubevirt-api/README.md', 'kubevirt-api/PROVENANCE.yml'}
SEMVER = re.compile(r'^v\d+\.\d+\.\d+$')

# The CRDs each pinned CRD file must define, by (repository, release).
CRD_NAMES = {
    ('kubevirt', 'v1.9.0'): {
        'virtualmachineinstances.kubevirt.io', 'virtualmachines.kubevirt.io', 'virtualmachineinstancepresets.kubevirt.io',
        'virtualmachineinstancereplicasets.kubevirt.io', 'virtualmachineinstancemigrations.kubevirt.io',
        'kubevirts.kubevirt.io', 'virtualmachinepools.pool.kubevirt.io', 'virtualmachinesnapshots.snapshot.kubevirt.io',
        'virtualmachinesnapshotcontents.snapshot.kubevirt.io', 'virtualmachinerestores.snapshot.kubevirt.io',
        'virtualmachineexports.export.kubevirt.io', 'virtualmachinebackups.backup.kubevirt.io',
        'virtualmachinebackuptrackers.backup.kubevirt.io', 'virtualmachineinstancetypes.instancetype.kubevirt.io',
        'virtualmachineclusterinstancetypes.instancetype.kubevirt.io',
        'virtualmachinepreferences.instancetype.kubevirt.io', 'virtualmachineclusterpreferences.instancetype.kubevirt.io',
        'migrationpolicies.migrations.kubevirt.io', 'virtualmachineclones.clone.kubevirt.io',
        'plugins.plugin.kubevirt.io',  # new in v1.9.0
    },
    ('cdi', 'v1.66.0'): {
        'cdis.cdi.kubevirt.io', 'cdiconfigs.cdi.kubevirt.io', 'dataimportcrons.cdi.kubevirt.io',
        'datasources.cdi.kubevirt.io', 'datavolumes.cdi.kubevirt.io', 'objecttransfers.cdi.kubevirt.io',
        'openstackvolumepopulators.forklift.cdi.kubevirt.io', 'ovirtvolumepopulators.forklift.cdi.kubevirt.io',
        'storageprofiles.cdi.kubevirt.io', 'volumeclonesources.cdi.kubevirt.io', 'volumeimportsources.cdi.kubevirt.io',
        'volumeuploadsources.cdi.kubevirt.io',
    },
}
# Schema fields (CRD, version, property path; ``[]`` = array items) that tell the pinned release from its neighbours.
RELEASE_MARKERS = {
    ('kubevirt', 'v1.9.0'): {
        'present': (  # absent in v1.8.4
            ('virtualmachineinstances.kubevirt.io', 'v1', '.spec.domain.devices.interfaces[].portRanges[].protocol'),
            ('virtualmachineinstances.kubevirt.io', 'v1', '.spec.networks[].resourceClaim'),
            ('virtualmachines.kubevirt.io', 'v1', '.spec.template.spec.networks[].resourceClaim'),
            ('kubevirts.kubevirt.io', 'v1', '.spec.configuration.confidentialCompute.tdx.attestation'),
            ('migrationpolicies.migrations.kubevirt.io', 'v1alpha1', '.spec.experimental.stallDetector'),
            ('virtualmachinebackups.backup.kubevirt.io', 'v1alpha1', '.status.exportUID'),
            ('virtualmachinepreferences.instancetype.kubevirt.io', 'v1beta1', '.spec.preferredLaunchSecurity.sev'),
            # dropped on the main branch after v1.9.0
            ('virtualmachines.kubevirt.io', 'v1', '.status.changedBlockTracking.backupStatus.volumes[].diskTarget'),
        ),
        'absent': (
            ('virtualmachinebackups.backup.kubevirt.io', 'v1alpha1', '.status.conditions[].lastProbeTime'),  # v1.8.4
            # added on the main branch after v1.9.0
            ('migrationpolicies.migrations.kubevirt.io', 'v1alpha1', '.spec.experimental.downtimeTuning'),
            ('virtualmachineinstances.kubevirt.io', 'v1',
             '.status.migrationState.migrationConfiguration.experimental.downtimeTuning'),
        ),
    },
    ('cdi', 'v1.66.0'): {
        'present': (  # absent in v1.65.0
            ('cdis.cdi.kubevirt.io', 'v1beta1', '.spec.config.webhookPvcRendering'),
            ('cdiconfigs.cdi.kubevirt.io', 'v1beta1', '.spec.webhookPvcRendering'),
            ('datavolumes.cdi.kubevirt.io', 'v1beta1', '.spec.source.vddk.certConfigMap'),
            ('datavolumes.cdi.kubevirt.io', 'v1beta1', '.spec.source.http.insecureSkipVerify'),
            ('dataimportcrons.cdi.kubevirt.io', 'v1beta1', '.spec.template.spec.source.vddk.certConfigMap'),
        ),
        'absent': (),
    },
}
# The operator Deployment of each repository's install manifest and the env variables that carry its release.
OPERATORS = {
    'kubevirt': {'deployment': 'virt-operator', 'version_env': ('KUBEVIRT_VERSION',)},
    'cdi': {'deployment': 'cdi-operator', 'version_env': ('OPERATOR_VERSION',)},
}
LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)  # the KubeVirt CRDs are 3.8 MB of YAML
IMAGE_REF = re.compile(r'quay\.io/kubevirt/[a-z0-9-]+(?::([A-Za-z0-9._-]+)|@sha256:[0-9a-f]{64})?')


def pins():
    return yaml.safe_load(PINS.read_text())


def pinned_files():
    return pins()['files']


def by_path():
    return {entry['path']: entry for entry in pinned_files()}


@functools.lru_cache(maxsize=None)
def _documents(path):
    return tuple(d for d in yaml.load_all((FIXTURES / path).read_text(), Loader=LOADER) if d)


def documents(path):
    """The YAML documents of a fixture file (parsed once per test session; callers must not change them)."""
    return list(_documents(path))


def schema_paths(schema, prefix=''):
    """Every property path of an OpenAPI v3 schema (``[]`` for array items)."""
    found = set()
    for name, sub in (schema.get('properties') or {}).items():
        found.add(prefix + '.' + name)
        found |= schema_paths(sub, prefix + '.' + name)
    if isinstance(schema.get('items'), dict):
        found |= schema_paths(schema['items'], prefix + '[]')
    return found


def crd_paths(docs):
    """{(CRD name, version): property paths} of a list of CustomResourceDefinition documents."""
    return {(d['metadata']['name'], v['name']): schema_paths(v['schema']['openAPIV3Schema'])
            for d in docs if d.get('kind') == 'CustomResourceDefinition' for v in d['spec']['versions']}


def test_pin_entries_are_complete():
    data = pins()
    repositories = data['repositories']
    commits = {}
    for entry in data['files']:
        assert set(entry) >= {'path', 'repository', 'version', 'commit', 'upstream', 'made', 'sha256'}, entry
        assert entry['repository'] in repositories, entry['path']
        assert SEMVER.match(entry['version']), entry['path']
        assert re.fullmatch(r'[0-9a-f]{40}', entry['commit']), entry['path']
        assert re.fullmatch(r'[0-9a-f]{64}', entry['sha256']), entry['path']
        assert entry['made'] in ('verbatim', 'generated', 'trimmed'), entry['path']
        release = (entry['repository'], entry['version'])
        assert commits.setdefault(release, entry['commit']) == entry['commit'], (
            '%s: %s %s pinned to two commits' % (entry['path'], release[0], release[1]))


def test_every_fixture_file_is_pinned_and_every_pin_exists():
    on_disk = {p.relative_to(FIXTURES).as_posix() for top in PINNED_DIRS for p in (FIXTURES / top).rglob('*')
               if p.is_file() and '__pycache__' not in p.parts} - NOT_DATA
    pinned = set(by_path())
    assert len(pinned) == len(pinned_files()), 'a path is pinned twice'
    assert not on_disk - pinned, 'not pinned in PROVENANCE.yml: %s' % sorted(on_disk - pinned)
    assert not pinned - on_disk, 'pinned but missing: %s' % sorted(pinned - on_disk)


@pytest.mark.parametrize('entry', pinned_files(), ids=lambda e: e['path'])
def test_sha256_is_the_pinned_one(entry):
    actual = hashlib.sha256((FIXTURES / entry['path']).read_bytes()).hexdigest()
    assert actual == entry['sha256'], ('%s changed: sha256 %s, pinned %s (update PROVENANCE.yml and README.md with '
                                       'where the new data came from)' % (entry['path'], actual, entry['sha256']))


def test_readme_table_shows_the_pinned_hashes_and_commits():
    text = README.read_text()
    rows = {}
    for line in text.splitlines():
        match = re.match(r'^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$', line)
        if match:
            rows[match.group(1)] = match.group(2)
    assert rows == {path: entry['sha256'] for path, entry in by_path().items()}
    for entry in pinned_files():
        assert entry['commit'] in text and entry['version'] in text, entry['path']


@pytest.mark.parametrize('entry', [e for e in pinned_files() if e['path'].endswith('-crds.yaml')], ids=lambda e: e['path'])
def test_crd_files_are_the_pinned_release(entry):
    release = (entry['repository'], entry['version'])
    assert release in RELEASE_MARKERS and release in CRD_NAMES, (
        'no release markers for %s %s: compare its schemas with the neighbouring releases and add them' % release)
    docs = documents(entry['path'])
    names = {d['metadata']['name'] for d in docs}
    assert names == CRD_NAMES[release], '%s: CRDs missing %s, unexpected %s for %s %s' % (
        entry['path'], sorted(CRD_NAMES[release] - names), sorted(names - CRD_NAMES[release]), release[0], release[1])
    assert len(docs) == len(CRD_NAMES[release])
    paths = crd_paths(docs)
    for crd, version, path in RELEASE_MARKERS[release]['present']:
        assert path in paths[(crd, version)], '%s: %s %s has no %s, which %s %s has' % (
            entry['path'], crd, version, path, release[0], release[1])
    for crd, version, path in RELEASE_MARKERS[release]['absent']:
        assert path not in paths[(crd, version)], '%s: %s %s has %s, which %s %s does not have' % (
            entry['path'], crd, version, path, release[0], release[1])


def test_release_markers_tell_the_neighbours_apart():
    """A marker list that a neighbouring release also satisfies would prove nothing: each release has markers of both
    kinds or at least three present ones, and no path is both present and absent."""
    for release, markers in RELEASE_MARKERS.items():
        assert len(markers['present']) >= 3, release
        assert not set(markers['present']) & set(markers['absent']), release


def operator_deployment(docs, name):
    found = [d for d in docs if d.get('kind') == 'Deployment' and d['metadata']['name'] == name]
    assert len(found) == 1, 'Deployment %s: %d found' % (name, len(found))
    return found[0]['spec']['template']['spec']['containers'][0]


@pytest.mark.parametrize('entry', [e for e in pinned_files() if e['path'].startswith('install/')], ids=lambda e: e['path'])
def test_operator_manifests_deploy_the_pinned_release(entry):
    version = entry['version']
    folder = entry['path'].split('/')[1]
    assert folder == '%s-%s' % (entry['repository'], version), 'the folder %s does not name %s' % (folder, version)
    text = (FIXTURES / entry['path']).read_text()
    assert version in text.splitlines()[0], 'the header does not name %s' % version
    tags = [m.group(1) for m in IMAGE_REF.finditer(text)]
    assert tags and set(tags) == {version}, 'image tags %s, pinned %s' % (sorted(set(tags)), version)
    operator = OPERATORS[entry['repository']]
    container = operator_deployment(documents(entry['path']), operator['deployment'])
    env = {e['name']: e.get('value') for e in container.get('env', ())}
    assert container['image'].endswith(':' + version)
    for name in operator['version_env']:
        assert env[name] == version, '%s=%s, pinned %s' % (name, env[name], version)
    for name, value in env.items():
        if name.endswith('_IMAGE'):
            assert value.endswith(':' + version), '%s=%s, pinned %s' % (name, value, version)


def test_operator_manifest_crds_match_the_api_data_of_the_same_release():
    """The operator's own CRD in an install manifest of the release the API data comes from has the same names,
    scope and versions (served/storage) as in that API data (the install manifests shorten only the schema)."""
    api = {(e['repository'], e['version']): documents(e['path']) for e in pinned_files() if e['path'].endswith('-crds.yaml')}
    checked = 0
    for entry in pinned_files():
        release = (entry['repository'], entry['version'])
        if not entry['path'].startswith('install/') or release not in api:
            continue
        full = {d['metadata']['name']: d for d in api[release]}
        for doc in documents(entry['path']):
            if doc.get('kind') != 'CustomResourceDefinition':
                continue
            ref = full[doc['metadata']['name']]
            assert doc['spec']['names']['kind'] == ref['spec']['names']['kind']
            assert doc['spec']['scope'] == ref['spec']['scope']
            served = {(v['name'], v['served'], v['storage']) for v in doc['spec']['versions']}
            assert served <= {(v['name'], v['served'], v['storage']) for v in ref['spec']['versions']}, entry['path']
            checked += 1
    assert checked >= 2


def test_examples_use_kinds_the_pinned_crds_serve():
    served = set()
    for entry in pinned_files():
        if entry['path'].endswith('-crds.yaml'):
            for d in documents(entry['path']):
                served |= {('%s/%s' % (d['spec']['group'], v['name']), d['spec']['names']['kind'])
                           for v in d['spec']['versions'] if v['served']}
    examples = [e for e in pinned_files() if e['path'].startswith('kubevirt-api/examples/')]
    assert examples
    for entry in examples:
        for doc in documents(entry['path']):
            assert (doc['apiVersion'], doc['kind']) in served, '%s: %s %s' % (entry['path'], doc['apiVersion'], doc['kind'])
