{{/*
A StatefulSet of one role with its headless Service and PodDisruptionBudget.
Call with (dict "ctx" $ "component" "ruler" "values" .Values.ruler
  "target" "ruler" "raft" bool "alertmanager" bool "rules" bool "persistent" bool
  "podManagementPolicy" "Parallel").
*/}}
{{- define "pharos.statefulset" -}}
{{- $ctx := .ctx -}}
{{- $fullname := include "pharos.fullname" $ctx -}}
{{- $name := printf "%s-%s" $fullname .component -}}
{{- $p := include "pharos.persistence" (dict "ctx" $ctx "component" .values) | fromYaml -}}
{{- $persistent := and .persistent $p.enabled -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "pharos.labels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  serviceName: {{ $name }}-headless
  podManagementPolicy: {{ .podManagementPolicy }}
  updateStrategy:
    type: RollingUpdate
  selector:
    matchLabels:
      {{- include "pharos.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 6 }}
  template:
    metadata:
      {{- include "pharos.podMetadata" (dict "ctx" $ctx "component" .component "rules" .rules "alertmanager" .alertmanager) | nindent 6 }}
    spec:
      {{- include "pharos.podSettings" (dict "ctx" $ctx "values" .values) | nindent 6 }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "pharos.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 14 }}
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "pharos.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 14 }}
      containers:
        {{- include "pharos.container" (dict "ctx" $ctx "values" .values "target" .target "raft" .raft "alertmanager" .alertmanager "rules" .rules) | nindent 8 }}
      volumes:
        {{- include "pharos.volumes" (dict "ctx" $ctx "persistent" $persistent "rules" .rules "alertmanager" .alertmanager) | nindent 8 }}
  {{- if $persistent }}
  {{- include "pharos.volumeClaimTemplates" (dict "ctx" $ctx "values" .values) | nindent 2 }}
  {{- end }}
---
# Stable per-pod DNS names (<pod>.{{ $name }}-headless) for raft and
# notifier peers; not-ready pods are published because peers must find each
# other before any of them is ready.
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-headless
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "pharos.labels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  ports:
    - name: http
      port: 9090
      targetPort: http
    {{- if .raft }}
    - name: raft
      port: 9096
      targetPort: raft
    {{- end }}
    {{- if .alertmanager }}
    - name: http-notifier
      port: 9093
      targetPort: http-notifier
    - name: cluster-tcp
      port: 9094
      targetPort: cluster-tcp
      protocol: TCP
    - name: cluster-udp
      port: 9094
      targetPort: cluster-udp
      protocol: UDP
    {{- end }}
  selector:
    {{- include "pharos.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "pharos.labels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "pharos.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 6 }}
{{- end -}}
