{{/* Names, labels and derived values shared by the templates. */}}

{{- define "ccm-lb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: the release name, prefixed with the chart name unless it already contains it. */}}
{{- define "ccm-lb.fullname" -}}
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

{{- define "ccm-lb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ccm-lb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ccm-lb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ccm-lb.labels" -}}
helm.sh/chart: {{ include "ccm-lb.chart" . }}
{{ include "ccm-lb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: ccm-lb
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ccm-lb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ccm-lb.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The leader-election Lease: its name (the Role is restricted to it) and namespace. */}}
{{- define "ccm-lb.leaseName" -}}
{{- default (printf "%s-controller" (include "ccm-lb.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "ccm-lb.leaseNamespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{- define "ccm-lb.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "ccm-lb.cloudConfigPath" -}}
/etc/ccm/cloud.conf
{{- end }}

{{/* The Deployment gets a PodDisruptionBudget only when a disruption can leave a pod running. */}}
{{- define "ccm-lb.pdbEnabled" -}}
{{- if and (eq .Values.kind "Deployment") .Values.podDisruptionBudget.enabled (gt (int .Values.replicas) 1) }}true{{- end }}
{{- end }}

{{/* The arguments of `ccm run`, one flag per list item. */}}
{{- define "ccm-lb.args" -}}
- --cloud-provider={{ .Values.cloudProvider }}
- --cluster-name={{ .Values.clusterName }}
{{- with .Values.loadBalancerClass }}
- --load-balancer-class={{ . }}
{{- end }}
- --load-balancer-resync-period={{ .Values.resyncPeriod }}
- --load-balancer-orphan-grace-period={{ .Values.orphanGracePeriod }}
{{- if .Values.cloudConfig }}
- --cloud-config={{ include "ccm-lb.cloudConfigPath" . }}
{{- end }}
- --leader-elect={{ .Values.leaderElection.enabled }}
{{- if .Values.leaderElection.enabled }}
- --leader-elect-resource-name={{ include "ccm-lb.leaseName" . }}
- --leader-elect-resource-namespace={{ include "ccm-lb.leaseNamespace" . }}
- --leader-elect-lease-duration={{ .Values.leaderElection.leaseDuration }}
- --leader-elect-renew-deadline={{ .Values.leaderElection.renewDeadline }}
- --leader-elect-retry-period={{ .Values.leaderElection.retryPeriod }}
{{- end }}
- --concurrent-service-syncs={{ .Values.concurrentServiceSyncs }}
- --secure-port={{ .Values.securePort }}
- --logging-format={{ .Values.loggingFormat }}
- --v={{ .Values.logLevel }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
