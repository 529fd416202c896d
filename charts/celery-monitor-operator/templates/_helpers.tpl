{{/* Names, labels and the image reference shared by every template of the chart. */}}

{{/* The chart's short name. */}}
{{- define "celery-monitor-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the release name alone when it already holds the chart's name,
so `helm install celery-monitor-operator ...` gives objects named celery-monitor-operator.
*/}}
{{- define "celery-monitor-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "celery-monitor-operator.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "celery-monitor-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pods: stable across upgrades. */}}
{{- define "celery-monitor-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "celery-monitor-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard app.kubernetes.io labels on every object of the release. */}}
{{- define "celery-monitor-operator.labels" -}}
helm.sh/chart: {{ include "celery-monitor-operator.chart" . }}
{{ include "celery-monitor-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: celery-monitor
{{- end }}

{{- define "celery-monitor-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "celery-monitor-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "celery-monitor-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "celery-monitor-operator.testImage" -}}
{{- default (include "celery-monitor-operator.image" .) .Values.tests.image }}
{{- end }}

{{- define "celery-monitor-operator.peeringName" -}}
{{- default (include "celery-monitor-operator.fullname" .) .Values.peering.name }}
{{- end }}

{{/* The operator's command-line options: the same ones the raw manifests give it. */}}
{{- define "celery-monitor-operator.args" -}}
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --liveness=http://0.0.0.0:{{ .Values.healthPort }}/healthz
{{- if .Values.peering.standalone }}
- --standalone
{{- else }}
- --peering={{ include "celery-monitor-operator.peeringName" . }}
{{- end }}
{{- end }}
