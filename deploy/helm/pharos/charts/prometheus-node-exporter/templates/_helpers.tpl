{{- define "node-exporter.fullname" -}}
{{- printf "%s-node-exporter" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "node-exporter.selectorLabels" -}}
app.kubernetes.io/name: prometheus-node-exporter
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
