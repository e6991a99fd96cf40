{{/* The chart's name, used as app.kubernetes.io/name (as in deploy/). */}}
{{- define "ovirt-cloudprovider.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: the release name if it contains the chart name, else release-chart. */}}
{{- define "ovirt-cloudprovider.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object: deploy/'s labels plus Helm's. Pod templates and selectors use selectorLabels only. */}}
{{- define "ovirt-cloudprovider.labels" -}}
app.kubernetes.io/name: {{ include "ovirt-cloudprovider.name" . }}
app.kubernetes.io/part-of: {{ include "ovirt-cloudprovider.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ovirt-cloudprovider.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ovirt-cloudprovider.name" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* The generated config Secret is named after the base's Secret: ovirt-cloud-config-generated. */}}
{{- define "ovirt-cloudprovider.configSecretBase" -}}ovirt-cloud-config{{- end -}}

{{- define "ovirt-cloudprovider.configSecret" -}}
{{- if .Values.config.existingSecret -}}
{{- .Values.config.existingSecret -}}
{{- else -}}
{{- printf "%s-generated" (include "ovirt-cloudprovider.configSecretBase" .) -}}
{{- end -}}
{{- end -}}

{{- define "ovirt-cloudprovider.podSecurity" -}}
{{- if .Values.hostNetwork -}}privileged{{- else -}}restricted{{- end -}}
{{- end -}}

{{- define "ovirt-cloudprovider.controllerLabels" -}}
{{ include "ovirt-cloudprovider.labels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* Pod template labels: exactly deploy/'s (selector labels and part-of), so both install the same pods. */}}
{{- define "ovirt-cloudprovider.podLabels" -}}
{{ include "ovirt-cloudprovider.selectorLabels" . }}
app.kubernetes.io/part-of: {{ include "ovirt-cloudprovider.name" . }}
{{- end -}}

{{/* The Lease: leaderElection.leaseName, else the instance name (as the controller names it). */}}
{{- define "ovirt-cloudprovider.leaseName" -}}
{{- .Values.leaderElection.leaseName | default .Values.instance -}}
{{- end -}}

{{/* The autoscaler (autoscaler.enabled): its own names and labels, component "autoscaler". */}}
{{- define "ovirt-cloudprovider.autoscalerName" -}}
{{- printf "%s-autoscaler" (include "ovirt-cloudprovider.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ovirt-cloudprovider.autoscalerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ovirt-cloudprovider.name" . }}
app.kubernetes.io/component: autoscaler
{{- end -}}

{{- define "ovirt-cloudprovider.autoscalerLabels" -}}
{{ include "ovirt-cloudprovider.labels" . }}
app.kubernetes.io/component: autoscaler
{{- end -}}

{{- define "ovirt-cloudprovider.autoscalerPodLabels" -}}
{{ include "ovirt-cloudprovider.autoscalerSelectorLabels" . }}
app.kubernetes.io/part-of: {{ include "ovirt-cloudprovider.name" . }}
{{- end -}}
