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
RBAC rules of the operator.
=============================================================================================
PROVISIONAL: the lead derives this list from the code (every verb the operator uses) and a
test compares the two. Until then it is the list below; keep it least-privilege.
=============================================================================================
*/}}
{{- define "mysqlmq-operator.rules" -}}
# The custom resource: read, add/remove the finalizer, write status.
- apiGroups: [mysqlmq.io]
  resources: [messagequeueclusters]
  verbs: [get, list, watch, update, patch]
- apiGroups: [mysqlmq.io]
  resources: [messagequeueclusters/status]
  verbs: [get, update, patch]
- apiGroups: [mysqlmq.io]
  resources: [messagequeueclusters/finalizers]
  verbs: [update]
# What a cluster owns: MariaDB pods, their volumes, Services, my.cnf and routing ConfigMaps,
# the credentials Secret (and reading the brokers' auth Secret).
- apiGroups: [""]
  resources: [pods, persistentvolumeclaims, services, configmaps, secrets]
  verbs: [get, list, watch, create, update, patch, delete]
# Events for `kubectl describe mqc`.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
# Brokers.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
# PodDisruptionBudgets (policy/v1 or policy/v1beta1, whichever the server offers).
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, update, patch, delete]
# Leader election.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch, delete]
{{- end }}
