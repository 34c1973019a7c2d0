{{/* The release's base name: the release name, with "-serin" unless it says serin already. */}}
{{- define "serin.fullname" -}}
{{- if contains "serin" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-serin" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "serin.controller.name" -}}{{ include "serin.fullname" . }}-controller{{- end -}}
{{- define "serin.waypoint.name" -}}{{ include "serin.fullname" . }}-waypoint{{- end -}}
{{- define "serin.prometheus.name" -}}{{ include "serin.fullname" . }}-prometheus{{- end -}}

{{- define "serin.serviceAccountName" -}}
{{- default (include "serin.controller.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Labels on everything the chart makes; `uninstall` and the tests find them by instance. */}}
{{- define "serin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: serin
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "serin.controller.selector" -}}
app.kubernetes.io/name: serin-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "serin.waypoint.selector" -}}
app.kubernetes.io/name: serin-waypoint
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "serin.image" -}}
{{- printf "%s:%s" .image.repository (default .chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* The Prometheus the builtin metrics query: the one named, else the bundled one if any. */}}
{{- define "serin.prometheusURL" -}}
{{- if .Values.controller.prometheusURL -}}
{{- .Values.controller.prometheusURL -}}
{{- else if .Values.prometheus.enabled -}}
{{- printf "http://%s.%s:9090" (include "serin.prometheus.name" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The controller's rights on what it runs and generates, in one namespace or all. */}}
{{- define "serin.controller.rules" -}}
# What it runs: Canaries (status and finalizer included); templates and providers it reads.
- apiGroups: [serin.dev]
  resources: [canaries]
  verbs: [get, list, watch, patch, update]
- apiGroups: [serin.dev]
  resources: [canaries/status, canaries/finalizers]
  verbs: [get, patch, update]
- apiGroups: [serin.dev]
  resources: [metrictemplates, alertproviders]
  verbs: [get, list, watch]
# What it generates and steers: the primary workload, the Services, the route, the primary HPA
# (never deleted by the controller: they are owned by the Canary and go with it).
- apiGroups: [apps]
  resources: [deployments, daemonsets]
  verbs: [get, list, watch, create, patch, update]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, update]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, update]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, update]
# The target's ConfigMaps and Secrets: a change is a new revision, and the primary gets copies.
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: [get, list, watch, create, patch, update]
# A workload that does not become ready: its pods say why (CrashLoopBackOff, ErrImagePull).
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
