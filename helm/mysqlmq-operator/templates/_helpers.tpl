{{/* Chart name, overridable with nameOverride. */}}
{{- define "mysqlmq-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. Truncated to 63 characters (DNS labels); a release whose
name already contains the chart name is not repeated.
*/}}
{{- define "mysqlmq-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* name-version, for the helm.sh/chart label. */}}
{{- define "mysqlmq-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "mysqlmq-operator.labels" -}}
helm.sh/chart: {{ include "mysqlmq-operator.chart" . }}
{{ include "mysqlmq-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: mysqlmq
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels the Deployment selects its pods by (never change them: selectors are immutable). */}}
{{- define "mysqlmq-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mysqlmq-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mysqlmq-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mysqlmq-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mysqlmq-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
RBAC rules of the operator in the namespaces it manages (a ClusterRole, or a Role per watched
namespace). Derived from the code and checked against it: test/e2e/helm-install.test.ts installs
this chart, records every API request the operators make (MQ_K8S_AUDIT_LOG) and fails when a
request is not granted here, or when a rule here is used by no request and by no code path listed
in that test's UNEXERCISED table. Change both together. A server-side apply needs patch, and
create as well when it creates the object.
*/}}
{{- define "mysqlmq-operator.rules" -}}
# The custom resource: watch cache (list, watch), finalizer (merge patch), status (merge patch).
- apiGroups: [mysqlmq.io]
  resources: [messagequeueclusters]
  verbs: [list, watch, patch]
- apiGroups: [mysqlmq.io]
  resources: [messagequeueclusters/status]
  verbs: [patch]
# ownerReferences with blockOwnerDeletion: needed where OwnerReferencesPermissionEnforcement runs.
- apiGroups: [mysqlmq.io]
  resources: [messagequeueclusters/finalizers]
  verbs: [update]
# Topics: watch cache, finalizer (merge patch), resources for discovered topics (create), status.
- apiGroups: [mysqlmq.io]
  resources: [messagequeuetopics]
  verbs: [list, watch, create, patch]
- apiGroups: [mysqlmq.io]
  resources: [messagequeuetopics/status]
  verbs: [patch]
# MariaDB instance Pods: created when missing, relabelled after a failover, deleted to replace a
# Failed one or to roll a spec change.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, create, patch, delete]
# Data volumes: server-side apply; deleted on cluster deletion under pvcDeletionPolicy: Delete.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [list, watch, create, patch, delete]
# Services, my.cnf and routing ConfigMaps: server-side apply (garbage-collected with the cluster).
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [list, watch, create, patch]
# Secrets by name only, never listed or watched: each cluster's generated credentials Secret
# (created once, read every reconcile, patched once to add a key a newer operator needs) and the
# brokers' auth Secret named in the spec (get).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch]
# Events for `kubectl describe mqc`.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Brokers: server-side apply.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch]
# PodDisruptionBudgets (policy/v1 or policy/v1beta1, whichever the server offers): server-side apply.
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, watch, create, patch]
{{- if .Values.networkPolicy.enabled }}
# The NetworkPolicy of each cluster's MariaDB Pods: watch cache, server-side apply.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, watch, create, patch]
{{- end }}
{{- if not .Values.watchNamespaces }}
# Nodes (cluster-wide installs only): a cordoned node holding a primary gets its shard switched
# over, so `kubectl drain` can evict it.
- apiGroups: [""]
  resources: [nodes]
  verbs: [list, watch]
{{- end }}
{{- end }}

{{/*
Leader election (runtime/leader-election.ts), in the release namespace only: the Lease named in
src/operator/main.ts is read and renewed by name; create cannot be limited to a name.
*/}}
{{- define "mysqlmq-operator.leaderElectionRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [mysqlmq-operator-leader]
  verbs: [get, update]
{{- end }}
