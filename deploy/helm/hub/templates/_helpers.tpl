{{/* The chart's name, overridable. */}}
{{- define "hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: release name and chart name, unless the release already holds it. */}}
{{- define "hub.fullname" -}}
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

{{- define "hub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the release's pods; never change them on a live release. */}}
{{- define "hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object; each template adds its app.kubernetes.io/component. */}}
{{- define "hub.labels" -}}
helm.sh/chart: {{ include "hub.chart" . }}
{{ include "hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hub
{{- end }}

{{- define "hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hub.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding HUB_ADMIN_TOKEN and the back-end URLs. */}}
{{- define "hub.secretName" -}}
{{- default (printf "%s-secrets" (include "hub.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "hub.policiesConfigMapName" -}}
{{- printf "%s-policies" (include "hub.fullname" .) }}
{{- end }}

{{- define "hub.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Seconds the kubelet waits between starting preStop and SIGKILL. It must cover the preStop
sleep plus the hub's own drain (HUB_SHUTDOWN_GRACE_SECONDS), or in-flight requests are cut.
*/}}
{{- define "hub.terminationGracePeriodSeconds" -}}
{{- $drain := add (int .Values.preStopSleepSeconds) (int .Values.hub.shutdownGraceSeconds) }}
{{- $period := default (add $drain 10) .Values.terminationGracePeriodSeconds | int }}
{{- if le $period (int $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + hub.shutdownGraceSeconds (%d)" $period (int $drain)) }}
{{- end }}
{{- $period }}
{{- end }}

{{/* The database URL and the settings every hub process reads (server and migration Job). */}}
{{- define "hub.commonEnv" -}}
- name: HUB_ENV
  value: {{ .Values.hub.environment | quote }}
- name: HUB_LOG_LEVEL
  value: {{ .Values.hub.logLevel | quote }}
- name: HUB_LOG_JSON
  value: {{ .Values.hub.logJson | quote }}
- name: HUB_DATA_DIR
  value: {{ .Values.hub.dataDir | quote }}
- name: HUB_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "hub.secretName" . }}
      key: HUB_DATABASE_URL
{{- end }}

{{/* Volumes shared by the server and the migration Job: the root file system is read-only. */}}
{{- define "hub.scratchVolumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.hub.dataSizeLimit }}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
{{- end }}

{{- define "hub.scratchMounts" -}}
- name: data
  mountPath: {{ .Values.hub.dataDir }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
The variable of one adapter secret: HUB_ADAPTER_SECRET_ and its name upper-cased
(payment_webhook_secret -> HUB_ADAPTER_SECRET_PAYMENT_WEBHOOK_SECRET), as the hub reads it.
*/}}
{{- define "hub.adapterSecretVariable" -}}
{{- printf "HUB_ADAPTER_SECRET_%s" (. | upper | replace "-" "_") -}}
{{- end }}

{{/*
Every adapter secret's name, as a JSON list: those the chart's Secret holds, and those named
for an existing Secret.
*/}}
{{- define "hub.adapterSecretNames" -}}
{{- $names := concat (keys .Values.secrets.adapterSecrets | sortAlpha) .Values.secrets.adapterSecretNames -}}
{{- $names | uniq | toJson -}}
{{- end }}
