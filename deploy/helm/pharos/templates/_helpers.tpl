{{/* Names: every object is <fullname>-<component>. */}}
{{- define "pharos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pharos.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pharos.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pharos.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pharos.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels; call with (dict "ctx" $ "component" "ingester"). */}}
{{- define "pharos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pharos.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{- define "pharos.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" -}}
{{- end -}}
{{- define "pharos.labels" -}}
helm.sh/chart: {{ include "pharos.chart" .ctx }}
{{ include "pharos.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{/* Host suffix of in-cluster service names. */}}
{{- define "pharos.svcSuffix" -}}
{{- printf ".%s.svc" .Release.Namespace -}}
{{- with .Values.clusterDomain }}.{{ . }}{{ end -}}
{{- end -}}

{{/* The files of security.tls's Secret as each link's client (and peer)
settings name them; the argument is the name peers' certificates carry. */}}
{{- define "pharos.peerTLS" -}}
cert_file: /etc/pharos/tls/tls.crt
key_file: /etc/pharos/tls/tls.key
ca_file: /etc/pharos/tls/ca.crt
server_name: {{ . }}
{{- end -}}

{{- define "pharos.gossipService" -}}
{{- printf "%s-gossip" (include "pharos.fullname" .) -}}
{{- end -}}

{{/* StatefulSet and headless Service names of the raft and notifier peers. */}}
{{- define "pharos.rulerName" -}}
{{- if eq .Values.mode "single" }}{{ include "pharos.fullname" . }}{{ else }}{{ include "pharos.fullname" . }}-ruler{{ end -}}
{{- end -}}
{{- define "pharos.notifierName" -}}
{{- if eq .Values.mode "single" }}{{ include "pharos.fullname" . }}{{ else }}{{ include "pharos.fullname" . }}-notifier{{ end -}}
{{- end -}}
{{- define "pharos.rulerReplicas" -}}
{{- if eq .Values.mode "single" }}{{ .Values.single.replicas }}{{ else }}{{ .Values.ruler.replicas }}{{ end -}}
{{- end -}}
{{- define "pharos.notifierReplicas" -}}
{{- if eq .Values.mode "single" }}{{ .Values.single.replicas }}{{ else }}{{ .Values.notifier.replicas }}{{ end -}}
{{- end -}}

{{/* Replication factor in force: ring.replicationFactor, else 3 (single: at most the replicas). */}}
{{- define "pharos.replicationFactor" -}}
{{- if not (kindIs "invalid" .Values.ring.replicationFactor) -}}
{{- int .Values.ring.replicationFactor -}}
{{- else if eq .Values.mode "single" -}}
{{- min 3 (int .Values.single.replicas) -}}
{{- else -}}
3
{{- end -}}
{{- end -}}

{{/* Whether the pods gossip: always when distributed, with >1 replica when single. */}}
{{- define "pharos.gossips" -}}
{{- if or (ne .Values.mode "single") (gt (int .Values.single.replicas) 1) }}true{{ end -}}
{{- end -}}

{{/* Rule files: serverFiles minus prometheus.yml and empty entries. */}}
{{- define "pharos.ruleFiles" -}}
{{- $out := dict -}}
{{- range $name, $content := .Values.serverFiles -}}
{{- if and (ne $name "prometheus.yml") $content -}}
{{- $_ := set $out $name $content -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Persistence of a component: the shared `persistence` block with the
component's own keys laid over it. Call with (dict "ctx" $ "component" .Values.ingester).
*/}}
{{- define "pharos.persistence" -}}
{{- $p := deepCopy .ctx.Values.persistence -}}
{{- $p = mergeOverwrite $p (default dict .component.persistence) -}}
{{- toYaml $p -}}
{{- end -}}

{{/*
The Pharos container and the volumes every pod mounts. Call with
(dict "ctx" $ "component" "ingester" "values" .Values.ingester "target" "ingester"
      "args" (list ...) "ports" (list ...) "alertmanager" bool "rules" bool).
*/}}
{{- define "pharos.container" -}}
{{- $ctx := .ctx -}}
- name: pharos
  image: {{ include "pharos.image" $ctx }}
  imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
  args:
    - -config.file=/etc/pharos/config/pharos.yaml
    - -config.expand-env
    - -target={{ .target }}
    {{- range .args }}
    - {{ . | quote }}
    {{- end }}
    {{- range $ctx.Values.extraArgs }}
    - {{ . | quote }}
    {{- end }}
    {{- range .values.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    # Referenced as ${POD_NAME} and ${POD_IP} in pharos.yaml (-config.expand-env).
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    {{- with $ctx.Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: http
      containerPort: 9090
      protocol: TCP
    - name: grpc
      containerPort: 9095
      protocol: TCP
    - name: gossip-tcp
      containerPort: 7946
      protocol: TCP
    - name: gossip-udp
      containerPort: 7946
      protocol: UDP
    {{- if .raft }}
    - name: raft
      containerPort: 9096
      protocol: TCP
    {{- end }}
    {{- if .alertmanager }}
    {{- if not .single }}
    - name: http-notifier
      containerPort: 9093
      protocol: TCP
    {{- end }}
    - name: cluster-tcp
      containerPort: 9094
      protocol: TCP
    - name: cluster-udp
      containerPort: 9094
      protocol: UDP
    {{- end }}
  {{- if .startupFailureThreshold }}
  # The HTTP server starts after the TSDB has replayed its WAL.
  startupProbe:
    httpGet:
      path: /-/healthy
      port: http
    periodSeconds: 10
    failureThreshold: {{ .startupFailureThreshold }}
  {{- end }}
  livenessProbe:
    httpGet:
      path: /-/healthy
      port: http
    periodSeconds: 15
    timeoutSeconds: 5
    failureThreshold: 4
  readinessProbe:
    httpGet:
      path: /ready
      port: http
    periodSeconds: 5
    timeoutSeconds: 3
  resources:
    {{- toYaml .values.resources | nindent 4 }}
  securityContext:
    {{- toYaml $ctx.Values.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: config
      mountPath: /etc/pharos/config
      readOnly: true
    {{- if .rules }}
    - name: rules
      mountPath: /etc/pharos/rules
      readOnly: true
    {{- end }}
    {{- if .alertmanager }}
    - name: alertmanager
      mountPath: /etc/pharos/alertmanager
      readOnly: true
    {{- end }}
    {{- if $ctx.Values.security.tls.secretName }}
    - name: tls
      mountPath: /etc/pharos/tls
      readOnly: true
    {{- end }}
    {{- if $ctx.Values.security.gossipKey.secretName }}
    - name: gossip-key
      mountPath: /etc/pharos/gossip
      readOnly: true
    {{- end }}
    - name: data
      mountPath: /data
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{- define "pharos.volumes" -}}
- name: config
  configMap:
    name: {{ include "pharos.fullname" .ctx }}-config
{{- if .rules }}
- name: rules
  configMap:
    name: {{ include "pharos.fullname" .ctx }}-rules
{{- end }}
{{- if .alertmanager }}
- name: alertmanager
  secret:
    secretName: {{ default (printf "%s-alertmanager" (include "pharos.fullname" .ctx)) .ctx.Values.alertmanagerExistingSecret }}
{{- end }}
{{- /* Not subPath-mounted: the kubelet updates the files when cert-manager
renews the certificate, and the processes re-read them. */}}
{{- with .ctx.Values.security.tls.secretName }}
- name: tls
  secret:
    secretName: {{ . }}
{{- end }}
{{- with .ctx.Values.security.gossipKey.secretName }}
- name: gossip-key
  secret:
    secretName: {{ . }}
{{- end }}
{{- if not .persistent }}
- name: data
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{/* Pod-level settings shared by every Pharos pod. */}}
{{- define "pharos.podSettings" -}}
{{- $ctx := .ctx -}}
serviceAccountName: {{ include "pharos.serviceAccountName" $ctx }}
{{- with $ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $ctx.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod metadata: labels (gossip membership included) and config checksums. */}}
{{- define "pharos.podMetadata" -}}
{{- $ctx := .ctx -}}
labels:
  {{- include "pharos.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 2 }}
  {{- with .extraLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- if include "pharos.gossips" $ctx }}
  app.kubernetes.io/part-of: {{ include "pharos.gossipService" $ctx }}
  {{- end }}
  {{- with $ctx.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include (print $ctx.Template.BasePath "/config.yaml") $ctx | sha256sum }}
  {{- if .rules }}
  checksum/rules: {{ include "pharos.ruleFiles" $ctx | sha256sum }}
  {{- end }}
  {{- if .alertmanager }}
  checksum/alertmanager: {{ toYaml $ctx.Values.alertmanagerFiles | sha256sum }}
  {{- end }}
  {{- with $ctx.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* A PersistentVolumeClaim template named data. */}}
{{- define "pharos.volumeClaimTemplates" -}}
{{- $p := include "pharos.persistence" (dict "ctx" .ctx "component" .values) | fromYaml -}}
{{- if $p.enabled }}
volumeClaimTemplates:
  - apiVersion: v1
    kind: PersistentVolumeClaim
    metadata:
      name: data
    spec:
      accessModes:
        {{- toYaml $p.accessModes | nindent 8 }}
      {{- with $p.storageClassName }}
      storageClassName: {{ . }}
      {{- end }}
      resources:
        requests:
          storage: {{ $p.size }}
{{- end }}
{{- end -}}
{{/*
The chart's own memcached for the results cache: run when the backend is
memcached and no servers are named.
*/}}
{{- define "pharos.resultsCacheServer" -}}
{{- $rc := .Values.queryFrontend.resultsCache -}}
{{- if and $rc.enabled (eq $rc.backend "memcached") (empty $rc.memcached.addresses) }}true{{ end -}}
{{- end -}}
{{/* memcached's -I for the chart's server, in KiB: maxItemSize and a KiB for
the key and item header, rounded up to memcached's 512 KiB slab chunks. */}}
{{- define "pharos.resultsCacheItemKiB" -}}
{{- mul (div (add (int64 .Values.queryFrontend.resultsCache.memcached.maxItemSize) 1024 524287) 524288) 512 -}}
{{- end -}}
{{- define "pharos.resultsCacheName" -}}
{{- printf "%s-results-cache" (include "pharos.fullname" .) -}}
{{- end -}}
{{- define "pharos.resultsCacheLabels" -}}
app.kubernetes.io/name: memcached
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: results-cache
{{- end -}}
{{/* The results cache's objects: its pods' labels, and the chart's. */}}
{{- define "pharos.resultsCacheObjectLabels" -}}
{{ include "pharos.resultsCacheLabels" . }}
helm.sh/chart: {{ include "pharos.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
