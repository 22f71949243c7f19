{{/*
Names and labels shared by every template.

The name label (app.kubernetes.io/name) is always the chart's name, backup-warden: the
ServiceMonitor takes the Prometheus job label from it (jobLabel), and the alert
BackupWardenControllerAbsent in files/prometheus-rules.yaml looks for up{job="backup-warden"}.
*/}}

{{- define "backup-warden.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's objects: fullnameOverride, else the release name when it already contains
the chart's name, else <release>-backup-warden. */}}
{{- define "backup-warden.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "backup-warden.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "backup-warden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backup-warden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "backup-warden.labels" -}}
{{ include "backup-warden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: backup-warden
helm.sh/chart: {{ include "backup-warden.chart" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The common labels merged with extra ones (they win on a clash): include with
(list $ $extraLabels). */}}
{{- define "backup-warden.labelsWith" -}}
{{- $ctx := index . 0 }}
{{- $labels := include "backup-warden.labels" $ctx | fromYaml }}
{{- toYaml (mergeOverwrite $labels (deepCopy (index . 1 | default dict))) }}
{{- end }}

{{- define "backup-warden.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "backup-warden.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "backup-warden.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Where mounted Secrets land in the container (read-only, one directory each). */}}
{{- define "backup-warden.secretsDir" -}}/etc/backup-warden/secrets{{- end }}

{{/* Fails the render on combinations the controller would reject or misuse. */}}
{{- define "backup-warden.validate" -}}
{{- $app := .Values.github.app }}
{{- $appSet := or $app.id $app.installationId $app.privateKeySecret.name }}
{{- if and $appSet (not (and $app.id $app.installationId $app.privateKeySecret.name)) }}
{{- fail "github.app: set all of id, installationId and privateKeySecret.name, or none of them" }}
{{- end }}
{{- if and $appSet .Values.github.tokenSecret.name }}
{{- fail "github: set either tokenSecret or app, not both" }}
{{- end }}
{{- if not (or .Values.tenancy.singleTeam .Values.tenancy.namespaces) }}
{{- fail "tenancy: say which AWS roles and GitHub repositories each namespace may use (tenancy.namespaces), or set tenancy.singleTeam=true for one team; see docs/installation.md#tenancy" }}
{{- end }}
{{- if and .Values.tenancy.singleTeam .Values.tenancy.namespaces }}
{{- fail "tenancy: set either singleTeam or namespaces, not both" }}
{{- end }}
{{- $shards := include "backup-warden.shards" . | int }}
{{- if and .Values.leaderElection.enabled (gt $shards 1) }}
{{- fail "sharding.shards > 1 needs leaderElection.enabled=false: with shards every replica acts on the shards whose leases it holds, and the controller refuses --shards with --leader-election" }}
{{- end }}
{{- if and (not .Values.leaderElection.enabled) (le $shards 1) (gt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled or sharding.shards > 1: without either every replica would act on every object in AWS and GitHub" }}
{{- end }}
{{- $events := .Values.events | default dict }}
{{- if and $events.deadLetterQueueUrl (not $events.queueUrl) }}
{{- fail "events.deadLetterQueueUrl needs events.queueUrl: the dead-letter queue receives the messages of that queue that cannot be read" }}
{{- end }}
{{- $webhook := .Values.githubWebhook | default dict }}
{{- if $webhook.enabled }}
{{- if not $webhook.secretName }}
{{- fail "githubWebhook.enabled needs githubWebhook.secretName: a Secret in the release namespace holding the webhook's secret (deliveries not signed with it are refused)" }}
{{- end }}
{{- if eq (int $webhook.port) 8080 }}
{{- fail "githubWebhook.port must not be 8080, the port of /metrics, /healthz and /readyz" }}
{{- end }}
{{- if eq (int $webhook.port) (int .Values.service.port) }}
{{- fail "githubWebhook.port must differ from service.port: the Service serves both" }}
{{- end }}
{{- end }}
{{- $evidence := .Values.evidence | default dict }}
{{- if and $evidence.bucket (include "backup-warden.evidenceClaim" .) (gt (int .Values.replicaCount) 1) }}
{{- fail "evidence.spool.existingClaim needs replicaCount: 1: one process may use a spool at a time, and every replica would mount the same claim (leave existingClaim empty for an emptyDir per pod)" }}
{{- end }}
{{- end }}

{{/* The PersistentVolumeClaim of the evidence spool (evidence.spool.existingClaim), or empty
for the emptyDir. evidence may be missing: `helm upgrade --reuse-values` from a chart
without it. */}}
{{- define "backup-warden.evidenceClaim" -}}
{{- (((.Values.evidence | default dict).spool | default dict).existingClaim) | default "" }}
{{- end }}

{{/* Where the evidence spool is mounted (--evidence-spool-dir). */}}
{{- define "backup-warden.evidenceSpoolDir" -}}/var/lib/backup-warden/evidence{{- end }}

{{/* The number of shards (sharding.shards; 1: no sharding). sharding may be missing:
`helm upgrade --reuse-values` from a chart without it. */}}
{{- define "backup-warden.shards" -}}
{{- (.Values.sharding | default dict).shards | default 1 | int }}
{{- end }}

{{/* Whether the pods need their name and namespace for Leases ("true" or empty): leader
election or sharding. */}}
{{- define "backup-warden.leases" -}}
{{- if or .Values.leaderElection.enabled (gt (include "backup-warden.shards" . | int) 1) }}true{{ end }}
{{- end }}

{{/* Whether a Prometheus Operator object is rendered ("true" or empty): include with
(list $ .Values.serviceMonitor.enabled "monitoring.coreos.com/v1/ServiceMonitor"). enabled
is auto (when the cluster serves that kind: a cluster without the Prometheus Operator's CRDs
installs cleanly), true or false. */}}
{{- define "backup-warden.monitoringEnabled" -}}
{{- $ctx := index . 0 }}
{{- $enabled := index . 1 }}
{{- if eq (toString $enabled) "auto" }}
{{- if $ctx.Capabilities.APIVersions.Has (index . 2) }}true{{ end }}
{{- else if $enabled }}true{{ end }}
{{- end }}

{{- define "backup-warden.serviceMonitorEnabled" -}}
{{- include "backup-warden.monitoringEnabled" (list . .Values.serviceMonitor.enabled "monitoring.coreos.com/v1/ServiceMonitor") }}
{{- end }}

{{- define "backup-warden.prometheusRuleEnabled" -}}
{{- include "backup-warden.monitoringEnabled" (list . .Values.prometheusRule.enabled "monitoring.coreos.com/v1/PrometheusRule") }}
{{- end }}

{{/* The labels of a Prometheus Operator object: monitoring.labels (what the Prometheus
selects on, e.g. kube-prometheus-stack's release), then the object's own labels. */}}
{{- define "backup-warden.monitoringLabels" -}}
{{- $ctx := index . 0 }}
{{- /* monitoring may be missing: `helm upgrade --reuse-values` from a chart without it */}}
{{- $shared := ($ctx.Values.monitoring | default dict).labels | default dict }}
{{- $labels := merge (deepCopy (index . 1 | default dict)) (deepCopy $shared) }}
{{- include "backup-warden.labelsWith" (list $ctx $labels) }}
{{- end }}
