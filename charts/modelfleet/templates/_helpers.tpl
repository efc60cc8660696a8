{{/* Names, labels and the values several templates derive. */}}

{{- define "modelfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelfleet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "modelfleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "modelfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelfleet
{{- end -}}

{{/* Selector labels of one component: include with (list $ "operator"). */}}
{{- define "modelfleet.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "modelfleet.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "modelfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelfleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modelfleet.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{- define "modelfleet.minioName" -}}
{{- printf "%s-minio" (include "modelfleet.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelfleet.storageEndpoint" -}}
{{- if .Values.storage.endpoint -}}
{{- .Values.storage.endpoint -}}
{{- else if .Values.minio.enabled -}}
{{- printf "http://%s.%s.svc:9000" (include "modelfleet.minioName" .) .Release.Namespace -}}
{{- else -}}
{{- fail "storage.endpoint is required (the S3 endpoint, e.g. http://minio.storage:9000), or set minio.enabled=true" -}}
{{- end -}}
{{- end -}}

{{/* The Secret the operator's own credentials come from (release namespace). */}}
{{- define "modelfleet.credentialsSecret" -}}
{{- required "storage.credentialsSecret is required" .Values.storage.credentialsSecret -}}
{{- end -}}

{{- define "modelfleet.jobCredentialsSecret" -}}
{{- default (include "modelfleet.credentialsSecret" .) .Values.storage.jobCredentialsSecret -}}
{{- end -}}

{{/* The restricted Pod Security profile, shared by every non-root pod of the chart. */}}
{{- define "modelfleet.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "modelfleet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The operator's rules: exactly what it calls, nothing on Secrets. */}}
{{- define "modelfleet.operatorRules" -}}
# Conversions and deployments: watched, status written; the main resource is patched only by
# kopf's own housekeeping (spec stays the user's).
- apiGroups: ["modelfleet.io"]
  resources: ["modelconversions", "edgedeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["modelfleet.io"]
  resources: ["modelconversions/status", "edgedeployments/status"]
  verbs: ["patch"]
# Devices: watched; the rollout controller writes spec.models (status belongs to the agent).
- apiGroups: ["modelfleet.io"]
  resources: ["edgedevices"]
  verbs: ["get", "list", "watch", "patch"]
# Conversion and validation Jobs, owner-referenced to their ModelConversion.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "delete"]
# Their Pods, read for the worker's termination message when a Job fails.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# Device heartbeats, read into an index.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["list", "watch"]
# kopf posts warnings and errors as Events.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# Phase transitions of conversions and deployments, as series-aggregated Events.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "get", "patch"]
{{- end -}}

{{/* S3 settings and credentials (secretKeyRef): include with (list $ endpoint secretName). */}}
{{- define "modelfleet.storageEnv" -}}
- name: MODELFLEET_S3_ENDPOINT
  value: {{ index . 1 | quote }}
- name: MODELFLEET_S3_BUCKET
  value: {{ (index . 0).Values.storage.bucket | quote }}
{{- with (index . 0).Values.storage.region }}
- name: MODELFLEET_S3_REGION
  value: {{ . | quote }}
{{- end }}
- name: MODELFLEET_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ index . 2 }}
      key: accessKey
- name: MODELFLEET_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ index . 2 }}
      key: secretKey
{{- end -}}
