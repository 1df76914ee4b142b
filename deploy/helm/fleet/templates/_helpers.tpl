{{/* The release's full name, at most 63 characters. */}}
{{- define "fleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fleet.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "fleet.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fleet.serviceAccount" -}}
{{- default (include "fleet.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Sharding is on with more than one replica, or when asked for. */}}
{{- define "fleet.sharded" -}}
{{- if or .Values.sharding.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* The Pod needs its ServiceAccount token only to reach this cluster's API: for the shard's
Leases, or as the destination in-cluster. */}}
{{- define "fleet.needsToken" -}}
{{- if or (include "fleet.sharded" .) .Values.inCluster.enabled -}}true{{- end -}}
{{- end -}}

{{- define "fleet.configMap" -}}
{{- default (printf "%s-config" (include "fleet.fullname" .)) .Values.config.existingConfigMap -}}
{{- end -}}
