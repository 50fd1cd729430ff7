{{/*
Chart name, truncated to the 63 characters Kubernetes allows in a name.
*/}}
{{- define "model-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name; the release name already containing the chart name is not repeated.
*/}}
{{- define "model-server.fullname" -}}
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

{{- define "model-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels (https://helm.sh/docs/chart_best_practices/labels/) plus the model version, so
dashboards and the guard's PromQL can select by model and revision.
*/}}
{{- define "model-server.labels" -}}
helm.sh/chart: {{ include "model-server.chart" . }}
{{ include "model-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.model.revision | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: model-server
app.kubernetes.io/part-of: modelship
modelship.dev/model: {{ .Values.model.name | quote }}
modelship.dev/variant: {{ .Values.model.variant | quote }}
{{- end }}

{{/*
Selector labels: immutable after install, so never the version.
*/}}
{{- define "model-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "model-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "model-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "model-server.image" -}}
{{- $repo := .Values.image.repository }}
{{- with .Values.image.registry }}{{ $repo = printf "%s/%s" . $repo }}{{ end }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Where the model file lands inside the pod.
*/}}
{{- define "model-server.modelFile" -}}
{{- printf "/models/%s" (base .Values.model.path) }}
{{- end }}

{{/*
The git source's URL: modelSource.gitUrl, else GitHub's clone URL of model.repository.
*/}}
{{- define "model-server.gitUrl" -}}
{{- .Values.modelSource.gitUrl | default (printf "https://github.com/%s.git" .Values.model.repository) }}
{{- end }}
