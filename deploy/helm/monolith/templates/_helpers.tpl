{{/* The chart's name. */}}
{{- define "monolith.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A fully qualified name: the release's, with the chart's name unless it is already in it. */}}
{{- define "monolith.fullname" -}}
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

{{- define "monolith.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "monolith.selectorLabels" -}}
app.kubernetes.io/name: {{ include "monolith.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "monolith.labels" -}}
helm.sh/chart: {{ include "monolith.chart" . }}
{{ include "monolith.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Secret with the API keys and the admin token: the existing one, or the chart's. */}}
{{- define "monolith.secretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- include "monolith.fullname" . }}
{{- end }}
{{- end }}

{{/* Grace period: the preStop sleep, then the server's drain, then 30 s to exit. */}}
{{- define "monolith.terminationGracePeriodSeconds" -}}
{{- add .Values.drainTimeoutSeconds 30 .Values.preStopSleepSeconds }}
{{- end }}
