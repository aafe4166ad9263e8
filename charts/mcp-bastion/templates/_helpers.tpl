{{/* Names and labels shared by every template. */}}
{{- define "mcp-bastion.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mcp-bastion.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mcp-bastion.serviceAccountName" -}}
{{- default (include "mcp-bastion.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "mcp-bastion.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-bastion.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "mcp-bastion.labels" -}}
{{ include "mcp-bastion.selectorLabels" . }}
app.kubernetes.io/part-of: mcp-bastion
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The operator image: digest wins over tag; the tag defaults to the chart's appVersion. */}}
{{- define "mcp-bastion.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The gateway image put into every MCP pod: the operator's own image unless set. */}}
{{- define "mcp-bastion.gatewayImage" -}}
{{- default (include "mcp-bastion.image" .) .Values.gateway.image -}}
{{- end -}}

{{/*
The operator's command line, in one place so it stays aligned with `mcp-bastion operator --help`.
*/}}
{{- define "mcp-bastion.args" -}}
- operator
- --gateway-image={{ include "mcp-bastion.gatewayImage" . }}
{{- if .Values.watchNamespaces }}
- --namespaces={{ join "," .Values.watchNamespaces }}
{{- end }}
- --leader-elect={{ .Values.leaderElection.enabled }}
- --leader-election-namespace={{ .Release.Namespace }}
- --metrics-bind-address=:{{ .Values.metrics.port }}
- --health-port={{ .Values.health.port }}
- --log-level={{ .Values.logLevel }}
{{- with .Values.clusterDomain }}
- --cluster-domain={{ . }}
{{- end }}
- --default-image-policy={{ .Values.defaultImagePolicy }}
{{- range $ns, $stores := .Values.allowClusterSecretStores }}
- --allow-cluster-secret-store={{ $ns }}={{ join "," $stores }}
{{- end }}
{{- range $ns, $issuers := .Values.allowClusterIssuers }}
- --allow-cluster-issuer={{ $ns }}={{ join "," $issuers }}
{{- end }}
{{- end -}}
