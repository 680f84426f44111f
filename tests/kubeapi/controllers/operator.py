"""Simulated virt-operator and cdi-operator (controller name ``operators``), written for the kubevirt_install issue.

What the real operators do that a playbook can observe, as read in upstream's source: kubevirt@v1.9.0
``pkg/virt-operator/kubevirt.go``, ``pkg/virt-operator/util/client.go``, ``pkg/virt-operator/webhooks/webhook.go``,
``staging/src/kubevirt.io/api/core/v1/types.go`` (KubeVirt status, phases, conditions) and
containerized-data-importer@v1.66.0
``staging/src/kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1/types.go``,
``vendor/kubevirt.io/controller-lifecycle-operator-sdk/api/types.go``, ``pkg/apiserver/webhooks/cdi-validate.go``:

* The operator runs once its Deployment (``virt-operator`` / ``cdi-operator``) is rolled out. This controller
  also plays kube-controller-manager + kubelet for the operator and operand Deployments/DaemonSets: after one
  step their status shows all replicas ready, unless the image's registry contains ``unreachable`` (the pull
  fails: 0 ready, condition message ``ImagePullBackOff``). The operator version is its image tag.
* KubeVirt CR (namespaced, in the operator's namespace): finalizer ``kubevirt.io/foregroundDeleteKubeVirt``;
  target version/registry = ``spec.imageTag``/``spec.imageRegistry`` or the operator's own. Fresh install:
  phase Deploying, Available=False/Progressing=True/Degraded=False (DeploymentInProgress); operands
  ``virt-api``, ``virt-controller`` (Deployments, ``spec.infra``) and ``virt-handler`` (DaemonSet on the nodes
  matching ``spec.workloads`` nodeSelector) are created; when they are ready: Created=True, phase Deployed,
  Available=True/Progressing=False/Degraded=False (AllComponentsReady), observed* = target*,
  observedGeneration = generation. Upgrade (the operator image tag changes): phase Deploying with
  Available=True/Progressing=True/Degraded=True (UpdateInProgress), target = new, observed = old, operands
  rolled to the new images (two steps), then Deployed with observed = new.
  A second KubeVirt CR gets Synchronized=False (ExistingDeployment) and nothing else.
* Deleting the CR: phase Deleting (DeletionInProgress), operands removed, finalizer dropped, CR gone. The
  operator's webhook rejects the delete when ``spec.uninstallStrategy`` is BlockUninstallIfWorkloadsExist,
  the phase is Deployed and VMIs, VMs or VMI ReplicaSets exist, with the real message.
* CDI CR (cluster-scoped, name ``cdi``): the same lifecycle with CDI's status (phase Deploying/Deployed/
  Upgrading/Deleting, conditions, operatorVersion/targetVersion/observedVersion), finalizer
  ``operator.cdi.kubevirt.io``, operands cdi-apiserver/cdi-deployment/cdi-uploadproxy, and the uninstall guard
  for DataVolumes not owned by a DataImportCron.
* Without a running operator nothing reconciles: a CR stays without status, and a CR being deleted hangs in
  Terminating (its finalizer stays), as on a real cluster where the operator was deleted first.

Simplifications: the operand CRDs (VirtualMachine, DataVolume, ...) are loaded at emulator start and not
created/removed by the operator; no virt-operator install strategy ConfigMaps, certificates or PDBs.
"""
from .. import errors
from ..api import Options, now
from ..resources import PRESERVE, ResourceType
from . import Controller
from ..util import clone

KV = ("kubevirt.io", "kubevirts")
CDI = ("cdi.kubevirt.io", "cdis")
DEPLOY = ("apps", "deployments")
DS = ("apps", "daemonsets")
NODES = ("", "nodes")
VWC = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
MWC = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
VMIRS = ("kubevirt.io", "virtualmachineinstancereplicasets")
DV = ("cdi.kubevirt.io", "datavolumes")
MANAGED_BY = "app.kubernetes.io/managed-by"
UNREACHABLE = "unreachable"

KV_FINALIZER = "kubevirt.io/foregroundDeleteKubeVirt"
CDI_FINALIZER = "operator.cdi.kubevirt.io"
KV_UNINSTALL_MSG = ("Rejecting the uninstall request, since there are still %s present. Either delete all KubeVirt "
                    "related workloads or change the uninstall strategy before uninstalling KubeVirt.")
CDI_UNINSTALL_MSG = ("Rejecting the uninstall request, since there are still DataVolumes present. Either delete all "
                     "DataVolumes or change the uninstall strategy before uninstalling CDI.")
BLOCK = "BlockUninstallIfWorkloadsExist"


def split_image(image):
    """``quay.io/kubevirt/virt-operator:v1.9.0`` -> (``quay.io/kubevirt``, ``virt-operator``, ``v1.9.0``)."""
    ref, _, digest = image.partition("@")
    tag = ""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    registry, _, name = ref.rpartition("/")
    return registry, name, tag or digest


def _cond(ctype, status, reason, message):
    t = now()
    return {"type": ctype, "status": status, "reason": reason, "message": message, "lastProbeTime": t,
            "lastTransitionTime": t}


def _conditions(old, wanted):
    """Keep lastTransitionTime of conditions whose status did not change, like the operators' helpers."""
    before = {c.get("type"): c for c in old or []}
    out = []
    for c in wanted:
        prev = before.get(c["type"])
        if prev and prev.get("status") == c["status"] and prev.get("reason") == c["reason"] and \
                prev.get("message") == c["message"]:
            out.append(prev)
        else:
            out.append(c)
    return out


def _container_env(dep, container=None):
    spec = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in spec.get("containers") or []:
        if container is None or c.get("name") == container:
            return c.get("image") or "", {e.get("name"): e.get("value") for e in c.get("env") or [] if "name" in e}
    return "", {}


class OperatorController(Controller):
    name = "operators"
    watches = (KV, CDI, DEPLOY, DS)

    # Kinds of the operator manifests (and of what the operators create) that the core emulator may not serve.
    EXTRA_KINDS = (("scheduling.k8s.io", "PriorityClass", "priorityclasses", False),
                   ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
                    True),
                   ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
                    True))

    def setup(self):
        self._pending = set()
        for group, kind, plural, generation in self.EXTRA_KINDS:
            if self.app.registry.get(group, plural) is None:
                self.app.registry.add(ResourceType(group, ["v1"], kind, plural, namespaced=False,
                                                   schemas={"v1": PRESERVE}, generation=generation))
        self.api.delete_hooks.append(self.admit_delete)

    def _rt(self, key):
        return self.app.registry.get(*key)

    def _opts(self, manager):
        return Options(validation="Ignore", manager=manager)

    def _later(self, key, fn, *args, delay=None):
        if key in self._pending:
            return
        self._pending.add(key)

        def run():
            self._pending.discard(key)
            fn(*args)
        self.after(self.step if delay is None else delay, run)

    # --- event dispatch ----------------------------------------------------------------------------------
    def reconcile(self, rkey, ns, name, etype, obj):
        if rkey in (DEPLOY, DS):
            # On a real control plane (tests/kubeapi/remote.py) kube-controller-manager writes the rollout status
            # from the pods the remote host runs, so this controller only reads it.
            if etype != "DELETED" and self._simulated(obj) and not getattr(self.app, "real_workload_controllers",
                                                                            False):
                self._later(("roll", rkey, ns, name), self._roll, rkey, ns, name)
            self._kick_all()
        elif rkey == KV:
            self._later(("kv", ns, name), self.sync_kv, ns, name, delay=0)
        elif rkey == CDI:
            self._later(("cdi", name), self.sync_cdi, name, delay=0)

    def _kick_all(self):
        for kv in self.store.items(KV):
            m = kv["metadata"]
            self._later(("kv", m.get("namespace"), m["name"]), self.sync_kv, m.get("namespace"), m["name"], delay=0)
        for cdi in self.store.items(CDI):
            self._later(("cdi", cdi["metadata"]["name"]), self.sync_cdi, cdi["metadata"]["name"], delay=0)

    @staticmethod
    def _simulated(obj):
        meta = obj["metadata"]
        return meta["name"] in ("virt-operator", "cdi-operator") or \
            (meta.get("labels") or {}).get(MANAGED_BY) in ("virt-operator", "cdi-operator")

    # --- Deployment / DaemonSet rollout (kube-controller-manager + kubelet) --------------------------------
    def _matching_nodes(self, pod_spec):
        selector = pod_spec.get("nodeSelector") or {}
        out = []
        for node in self.store.items(NODES):
            labels = node["metadata"].get("labels") or {}
            if (node.get("spec") or {}).get("unschedulable"):
                continue
            if all(labels.get(k) == v for k, v in selector.items()):
                out.append(node["metadata"]["name"])
        return out

    def _roll(self, rkey, ns, name):
        obj = self.store.get(rkey, ns, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        pod_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        images = [c.get("image") or "" for c in pod_spec.get("containers") or []]
        broken = [i for i in images if UNREACHABLE in split_image(i)[0]]
        gen = obj["metadata"].get("generation", 1)

        def mutate(o):
            st = o.setdefault("status", {})
            before = clone(st)
            st["observedGeneration"] = gen
            if rkey == DEPLOY:
                want = (o.get("spec") or {}).get("replicas", 1)
                ready = 0 if broken else want
                st.update({"replicas": want, "updatedReplicas": want, "readyReplicas": ready,
                           "availableReplicas": ready})
                if ready < want:
                    st["unavailableReplicas"] = want - ready
                else:
                    st.pop("unavailableReplicas", None)
                if broken:
                    wanted = [_cond("Available", "False", "MinimumReplicasUnavailable",
                                    "Deployment does not have minimum availability."),
                              _cond("Progressing", "True", "ReplicaSetUpdated",
                                    "Back-off pulling image \"%s\": ImagePullBackOff" % broken[0])]
                else:
                    wanted = [_cond("Available", "True", "MinimumReplicasAvailable",
                                    "Deployment has minimum availability."),
                              _cond("Progressing", "True", "NewReplicaSetAvailable",
                                    'ReplicaSet "%s" has successfully progressed.' % name)]
                st["conditions"] = _conditions(before.get("conditions"), wanted)
            else:
                nodes = len(self._matching_nodes(pod_spec))
                ready = 0 if broken else nodes
                st.update({"desiredNumberScheduled": nodes, "currentNumberScheduled": nodes,
                           "updatedNumberScheduled": nodes, "numberReady": ready, "numberAvailable": ready,
                           "numberMisscheduled": 0})
                if ready < nodes:
                    st["numberUnavailable"] = nodes - ready
                else:
                    st.pop("numberUnavailable", None)
            if st == before:
                return False
        self.api.write_status(self._rt(rkey), ns, name, mutate, "kube-controller-manager")

    @staticmethod
    def rolled_out(obj):
        """(ready, detail) of a Deployment/DaemonSet as the operators judge their operands."""
        if obj is None:
            return False, "not created"
        st = obj.get("status") or {}
        if st.get("observedGeneration") != obj["metadata"].get("generation", 1):
            return False, "rollout pending"
        if obj.get("kind") == "DaemonSet" or "desiredNumberScheduled" in st:
            want, ready = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
        else:
            want, ready = (obj.get("spec") or {}).get("replicas", 1), st.get("readyReplicas", 0)
        if ready < want:
            reason = next((c.get("message") for c in st.get("conditions") or []
                           if c.get("type") == "Progressing" and "BackOff" in (c.get("message") or "")), "")
            return False, "%d/%d ready%s" % (ready, want, (": " + reason) if reason else "")
        return True, "%d/%d ready" % (ready, want)

    def _operator(self, name):
        """(namespace, image, env) of the running operator Deployment ``name``, or None if it is not running."""
        for dep in self.store.items(DEPLOY):
            if dep["metadata"]["name"] != name or dep["metadata"].get("deletionTimestamp"):
                continue
            ok, _ = self.rolled_out(dep)
            if not ok:
                return None
            image, env = _container_env(dep, name)
            return dep["metadata"]["namespace"], image, env
        return None

    # --- operands ----------------------------------------------------------------------------------------
    def _ensure_workload(self, kind, ns, name, image, manager, version, replicas=None, placement=None,
                         labels=None):
        rkey = DEPLOY if kind == "Deployment" else DS
        placement = placement or {}
        pod_spec = {"containers": [{"name": name, "image": image}]}
        for key in ("nodeSelector", "affinity", "tolerations"):
            if placement.get(key):
                pod_spec[key] = clone(placement[key])
        lbl = dict(labels or {}, **{MANAGED_BY: manager, "app.kubernetes.io/version": version})
        spec = {"selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}}
        if kind == "Deployment":
            spec["replicas"] = replicas if replicas is not None else 2
        cur = self.store.get(rkey, ns, name)
        if cur is None:
            obj = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": ns, "labels": lbl},
                   "spec": spec}
            try:
                self.api.create(self._rt(rkey), "v1", ns, obj, self._opts(manager))
            except errors.ApiError as exc:
                if exc.code != 409:
                    print("kubeapi: %s could not create %s %s/%s: %s" % (manager, kind, ns, name, exc.message),
                          flush=True)
            return
        if cur.get("spec") == spec and (cur["metadata"].get("labels") or {}) == lbl:
            return
        new = clone(cur)
        new["spec"] = spec
        new["metadata"]["labels"] = lbl
        self.api.update(self._rt(rkey), "v1", ns, name, new, self._opts(manager))

    def _delete_workloads(self, ns, manager):
        left = 0
        for rkey in (DEPLOY, DS):
            for obj in self.store.items(rkey, ns):
                if (obj["metadata"].get("labels") or {}).get(MANAGED_BY) != manager:
                    continue
                left += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    try:
                        self.api.delete(self._rt(rkey), "v1", ns, obj["metadata"]["name"], self._opts(manager))
                    except errors.ApiError:
                        pass
        return left

    def _operands_state(self, ns, names):
        """{name: (ready, detail)} for operands (kind, name)."""
        out = {}
        for kind, name in names:
            obj = self.store.get(DEPLOY if kind == "Deployment" else DS, ns, name)
            out[name] = self.rolled_out(obj)
        return out

    def _set_meta(self, rkey, ns, name, fn, manager):
        cur = self.store.get(rkey, ns, name)
        if cur is None:
            return
        new = clone(cur)
        if fn(new) is False:
            return
        self.api.update(self._rt(rkey), self._rt(rkey).storage_version, ns, name, new, self._opts(manager))

    def _write_status(self, rkey, ns, name, status, manager):
        def mutate(o):
            old = o.get("status") or {}
            merged = dict(old)
            merged.update(status)
            merged["conditions"] = _conditions(old.get("conditions"), status.get("conditions") or [])
            if merged == old:
                return False
            o["status"] = merged
        self.api.write_status(self._rt(rkey), ns, name, mutate, manager)

    # --- KubeVirt ----------------------------------------------------------------------------------------
    KV_OPERANDS = (("Deployment", "virt-api"), ("Deployment", "virt-controller"), ("DaemonSet", "virt-handler"))

    def sync_kv(self, ns, name):
        kv = self.store.get(KV, ns, name)
        if kv is None:
            return
        meta = kv["metadata"]
        op = self._operator("virt-operator")
        if op is None or op[0] != ns:
            return
        _, op_image, op_env = op
        op_registry, _, op_tag = split_image(op_image)
        op_version = op_env.get("KUBEVIRT_VERSION") or op_tag
        status = kv.get("status") or {}
        if meta.get("deletionTimestamp"):
            self._kv_delete(ns, name, kv)
            return
        others = [o for o in self.store.items(KV) if o["metadata"]["uid"] != meta["uid"] and
                  not o["metadata"].get("deletionTimestamp") and
                  (o["metadata"]["creationTimestamp"], o["metadata"]["name"]) <
                  (meta["creationTimestamp"], meta["name"])]
        if others:
            self._write_status(KV, ns, name, {"phase": "", "conditions": [
                _cond("Synchronized", "False", "ExistingDeployment",
                      "There is an active KubeVirt deployment")]}, "virt-operator")
            return
        if KV_FINALIZER not in (meta.get("finalizers") or []):
            def add(o):
                o["metadata"]["finalizers"] = list(o["metadata"].get("finalizers") or []) + [KV_FINALIZER]
            self._set_meta(KV, ns, name, add, "virt-operator")
            return
        spec = kv.get("spec") or {}
        target = spec.get("imageTag") or op_version
        registry = spec.get("imageRegistry") or op_registry
        observed = status.get("observedKubeVirtVersion")
        observed_registry = status.get("observedKubeVirtRegistry")
        infra = ((spec.get("infra") or {}).get("nodePlacement")) or {}
        workloads = ((spec.get("workloads") or {}).get("nodePlacement")) or {}
        replicas = (spec.get("infra") or {}).get("replicas")
        if status.get("targetKubeVirtVersion") != target or status.get("targetKubeVirtRegistry") != registry:
            if observed:
                conds = [_cond("Available", "True", "UpdateInProgress",
                               "Transitioning from previous version %s with registry %s to target version %s "
                               "using registry %s" % (observed, observed_registry, target, registry)),
                         _cond("Progressing", "True", "UpdateInProgress",
                               "Transitioning from previous version %s with registry %s to target version %s "
                               "using registry %s" % (observed, observed_registry, target, registry)),
                         _cond("Degraded", "True", "UpdateInProgress",
                               "Transitioning from previous version %s with registry %s to target version %s "
                               "using registry %s" % (observed, observed_registry, target, registry))]
            else:
                msg = "Deploying version %s with registry %s" % (target, registry)
                conds = [_cond("Available", "False", "DeploymentInProgress", msg),
                         _cond("Progressing", "True", "DeploymentInProgress", msg),
                         _cond("Degraded", "False", "DeploymentInProgress", msg)]
            self._write_status(KV, ns, name, {
                "phase": "Deploying", "conditions": conds, "operatorVersion": op_version,
                "targetKubeVirtVersion": target, "targetKubeVirtRegistry": registry,
                "targetDeploymentID": "%s-%s" % (registry, target)}, "virt-operator")
            # Operands roll one step later, so that the transition is visible on the CR.
            self._later(("kv", ns, name), self.sync_kv, ns, name)
            return
        for kind, oname in self.KV_OPERANDS:
            self._ensure_workload(kind, ns, oname, "%s/%s:%s" % (registry, oname, target), "virt-operator", target,
                                  replicas=replicas if kind == "Deployment" else None,
                                  placement=workloads if kind == "DaemonSet" else infra,
                                  labels={"kubevirt.io": oname})
        states = self._operands_state(ns, self.KV_OPERANDS)
        if not all(ok for ok, _ in states.values()):
            return      # operand rollouts (events) bring us back
        self._ensure_webhooks(ns)
        done = {"phase": "Deployed", "observedKubeVirtVersion": target, "observedKubeVirtRegistry": registry,
                "observedDeploymentID": "%s-%s" % (registry, target), "observedGeneration": meta.get("generation", 1),
                "operatorVersion": op_version,
                "conditions": [_cond("Available", "True", "AllComponentsReady", "All components are ready."),
                               _cond("Progressing", "False", "AllComponentsReady", "All components are ready."),
                               _cond("Degraded", "False", "AllComponentsReady", "All components are ready."),
                               _cond("Created", "True", "AllResourcesCreated", "All resources were created.")]}
        self._write_status(KV, ns, name, done, "virt-operator")

    def _ensure_webhooks(self, ns):
        for rkey, kind, name in ((VWC, "ValidatingWebhookConfiguration", "virt-operator-validator"),
                                 (VWC, "ValidatingWebhookConfiguration", "virt-api-validator"),
                                 (MWC, "MutatingWebhookConfiguration", "virt-api-mutator")):
            if self.store.get(rkey, "", name) is not None:
                continue
            obj = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                   "metadata": {"name": name, "labels": {MANAGED_BY: "virt-operator"}},
                   # a record of what virt-operator registers (no rules: it matches no request; the simulation's own
                   # admission is wired elsewhere), valid for a real server: sideEffects and review versions required
                   "webhooks": [{"name": "%s.kubevirt.io" % name, "sideEffects": "None",
                                 "admissionReviewVersions": ["v1"], "failurePolicy": "Ignore", "rules": [],
                                 "clientConfig": {"service": {"namespace": ns, "name": name.rsplit("-", 1)[0]}}}]}
            try:
                self.api.create(self._rt(rkey), "v1", "", obj, self._opts("virt-operator"))
            except errors.ApiError as exc:
                if exc.code != 409:
                    print("kubeapi: controller operators: %s %s: %s" % (kind, name, exc.message), flush=True)

    def _kv_delete(self, ns, name, kv):
        status = kv.get("status") or {}
        if status.get("phase") != "Deleting":
            msg = "Deletion was triggered"
            self._write_status(KV, ns, name, {"phase": "Deleting", "conditions": [
                _cond("Available", "False", "DeletionInProgress", msg),
                _cond("Progressing", "False", "DeletionInProgress", msg),
                _cond("Degraded", "True", "DeletionInProgress", msg)]}, "virt-operator")
            self._later(("kv", ns, name), self.sync_kv, ns, name)
            return
        if self._delete_workloads(ns, "virt-operator"):
            self._later(("kv", ns, name), self.sync_kv, ns, name)
            return
        # virt-operator-validator is left behind on purpose: the user guide tells admins to delete it.
        for rkey, wname in ((VWC, "virt-api-validator"), (MWC, "virt-api-mutator")):
            try:
                self.api.delete(self._rt(rkey), "v1", "", wname, self._opts("virt-operator"))
            except errors.ApiError:
                pass

        def drop(o):
            fins = [f for f in o["metadata"].get("finalizers") or [] if f not in (KV_FINALIZER,
                                                                                  "foregroundDeleteKubeVirt")]
            if fins == (o["metadata"].get("finalizers") or []):
                return False
            o["metadata"]["finalizers"] = fins
        self._set_meta(KV, ns, name, drop, "virt-operator")

    # --- CDI ---------------------------------------------------------------------------------------------
    CDI_OPERANDS = (("Deployment", "cdi-apiserver", "APISERVER_IMAGE"), ("Deployment", "cdi-deployment",
                                                                          "CONTROLLER_IMAGE"),
                    ("Deployment", "cdi-uploadproxy", "UPLOAD_PROXY_IMAGE"))
    CDI_IMAGE = {"cdi-apiserver": "cdi-apiserver", "cdi-deployment": "cdi-controller",
                 "cdi-uploadproxy": "cdi-uploadproxy"}

    def sync_cdi(self, name):
        cdi = self.store.get(CDI, "", name)
        if cdi is None:
            return
        meta = cdi["metadata"]
        op = self._operator("cdi-operator")
        if op is None:
            return
        ns, op_image, env = op
        op_registry, _, op_tag = split_image(op_image)
        version = env.get("OPERATOR_VERSION") or op_tag
        status = cdi.get("status") or {}
        if meta.get("deletionTimestamp"):
            if status.get("phase") != "Deleting":
                msg = "Deletion was triggered"
                self._write_status(CDI, "", name, {"phase": "Deleting", "conditions": [
                    _cond("Available", "False", "", msg), _cond("Progressing", "False", "", msg),
                    _cond("Degraded", "True", "", msg)]}, "cdi-operator")
                self._later(("cdi", name), self.sync_cdi, name)
                return
            if self._delete_workloads(ns, "cdi-operator"):
                self._later(("cdi", name), self.sync_cdi, name)
                return

            def drop(o):
                fins = [f for f in o["metadata"].get("finalizers") or [] if f != CDI_FINALIZER]
                if fins == (o["metadata"].get("finalizers") or []):
                    return False
                o["metadata"]["finalizers"] = fins
            self._set_meta(CDI, "", name, drop, "cdi-operator")
            return
        if CDI_FINALIZER not in (meta.get("finalizers") or []):
            def add(o):
                o["metadata"]["finalizers"] = list(o["metadata"].get("finalizers") or []) + [CDI_FINALIZER]
            self._set_meta(CDI, "", name, add, "cdi-operator")
            return
        if status.get("targetVersion") != version:
            upgrading = bool(status.get("observedVersion"))
            msg = "Started Deployment" if not upgrading else "Upgrading from %s to %s" % (
                status.get("observedVersion"), version)
            conds = [_cond("Available", "True" if upgrading else "False", "Upgrading" if upgrading else "DeployStarted",
                           msg),
                     _cond("Progressing", "True", "Upgrading" if upgrading else "DeployStarted", msg),
                     _cond("Degraded", "False", "", "")]
            self._write_status(CDI, "", name, {"phase": "Upgrading" if upgrading else "Deploying",
                                               "conditions": conds, "operatorVersion": version,
                                               "targetVersion": version}, "cdi-operator")
            self._later(("cdi", name), self.sync_cdi, name)
            return
        spec = cdi.get("spec") or {}
        infra = spec.get("infra") or {}
        placement = {k: infra[k] for k in ("nodeSelector", "affinity", "tolerations") if infra.get(k)}
        replicas = {"cdi-apiserver": infra.get("apiServerReplicas"), "cdi-deployment": infra.get("deploymentReplicas"),
                    "cdi-uploadproxy": infra.get("uploadProxyReplicas")}
        for kind, oname, env_name in self.CDI_OPERANDS:
            image = env.get(env_name) or "%s/%s:%s" % (op_registry, self.CDI_IMAGE[oname], version)
            self._ensure_workload(kind, ns, oname, image, "cdi-operator", version,
                                  replicas=replicas[oname] if replicas[oname] is not None else 1, placement=placement,
                                  labels={"cdi.kubevirt.io": oname})
        states = self._operands_state(ns, [(k, n) for k, n, _ in self.CDI_OPERANDS])
        if not all(ok for ok, _ in states.values()):
            return
        self._write_status(CDI, "", name, {
            "phase": "Deployed", "observedVersion": version, "operatorVersion": version,
            "conditions": [_cond("Available", "True", "", "Deployment Completed"),
                           _cond("Progressing", "False", "", ""), _cond("Degraded", "False", "", "")]},
            "cdi-operator")

    # --- uninstall guards (validating webhooks on DELETE) --------------------------------------------------
    def admit_delete(self, rtype, obj, opts):
        if rtype.key == KV:
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            if spec.get("uninstallStrategy") != BLOCK or status.get("phase") != "Deployed":
                return
            for rkey, what in ((VMI, "Virtual Machine Instances"), (VM, "Virtual Machines"),
                               (VMIRS, "Virtual Machine Instance Replica Sets")):
                if self.store.items(rkey):
                    raise errors.ApiError(400, "BadRequest", 'admission webhook "kubevirt-validator.kubevirt.io" '
                                          'denied the request: ' + KV_UNINSTALL_MSG % what)
        elif rtype.key == CDI:
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            if spec.get("uninstallStrategy") != BLOCK or status.get("phase") in ("", None, "Error"):
                return
            for dv in self.store.items(DV):
                refs = dv["metadata"].get("ownerReferences") or []
                if not any(r.get("kind") == "DataImportCron" for r in refs):
                    raise errors.ApiError(400, "BadRequest", 'admission webhook "cdi-validate.cdi.kubevirt.io" '
                                          'denied the request: ' + CDI_UNINSTALL_MSG)
