{{/*
Checks that JSON Schema cannot express (they relate two values). Each fails
helm template/install with a message naming the values at fault.
*/}}
{{- define "pharos.validate" -}}
{{- $rf := include "pharos.replicationFactor" . | int -}}
{{- if eq .Values.mode "single" -}}
  {{- if gt $rf (int .Values.single.replicas) -}}
    {{- fail (printf "pharos: ring.replicationFactor (%d) must not be greater than single.replicas (%d): every series is written to that many distinct pods" $rf (int .Values.single.replicas)) -}}
  {{- end -}}
{{- else -}}
  {{- if gt $rf (int .Values.ingester.replicas) -}}
    {{- fail (printf "pharos: ring.replicationFactor (%d) must not be greater than ingester.replicas (%d): every series is written to that many distinct ingesters" $rf (int .Values.ingester.replicas)) -}}
  {{- end -}}
  {{- $za := .Values.ingester.zoneAwareReplication -}}
  {{- if $za.enabled -}}
    {{- $n := len $za.zones -}}
    {{- if eq $n 0 -}}
      {{- fail "pharos: ingester.zoneAwareReplication.zones must list the zones when zoneAwareReplication.enabled is true" -}}
    {{- end -}}
    {{- if gt $rf $n -}}
      {{- fail (printf "pharos: ring.replicationFactor (%d) must not be greater than the number of ingester.zoneAwareReplication.zones (%d): the copies of a series go to distinct zones" $rf $n) -}}
    {{- end -}}
    {{- if ne (mod (int .Values.ingester.replicas) $n) 0 -}}
      {{- fail (printf "pharos: ingester.replicas (%d) must divide evenly over the %d ingester.zoneAwareReplication.zones" (int .Values.ingester.replicas) $n) -}}
    {{- end -}}
    {{- $seen := dict -}}
    {{- range $za.zones -}}
      {{- if hasKey $seen .name -}}
        {{- fail (printf "pharos: ingester.zoneAwareReplication.zones: zone %q is listed twice" .name) -}}
      {{- end -}}
      {{- $_ := set $seen .name true -}}
    {{- end -}}
  {{- end -}}
{{- end -}}
{{- if include "pharos.resultsCacheServer" . -}}
  {{- $server := .Values.queryFrontend.resultsCache.memcached.server -}}
  {{- $itemKiB := include "pharos.resultsCacheItemKiB" . | int -}}
  {{- if gt (mul $itemKiB 2) (mul (int $server.memoryMiB) 1024) -}}
    {{- fail (printf "pharos: queryFrontend.resultsCache.memcached.maxItemSize (%d) needs an item limit of %d KiB, more than half of queryFrontend.resultsCache.memcached.server.memoryMiB (%d), which memcached refuses" (int64 .Values.queryFrontend.resultsCache.memcached.maxItemSize) $itemKiB (int $server.memoryMiB)) -}}
  {{- end -}}
{{- end -}}
{{- if not .Values.alertmanagerExistingSecret -}}
  {{- $am := index .Values.alertmanagerFiles "alertmanager.yml" -}}
  {{- if not $am -}}
    {{- fail "pharos: alertmanagerFiles.\"alertmanager.yml\" is required (or set alertmanagerExistingSecret)" -}}
  {{- end -}}
  {{- $global := default dict $am.global -}}
  {{- $globalSlack := or $global.slack_api_url $global.slack_api_url_file $global.slack_app_token $global.slack_app_token_file -}}
  {{- range $i, $r := $am.receivers -}}
    {{- range $j, $s := $r.slack_configs -}}
      {{- if not (or $globalSlack $s.api_url $s.api_url_file $s.app_token $s.app_token_file) -}}
        {{- fail (printf "pharos: alertmanagerFiles.\"alertmanager.yml\": receivers[%d] (%q) slack_configs[%d]: api_url is required (the Slack incoming-webhook URL), or api_url_file, or global.slack_api_url" $i $r.name $j) -}}
      {{- end -}}
    {{- end -}}
  {{- end -}}
{{- end -}}
{{- end -}}
