{{- define "synod.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "synod.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "synod.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "synod.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: name/instance/component only, because selectors are immutable. */}}
{{- define "synod.selectorLabels" -}}
app.kubernetes.io/name: {{ include "synod.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "synod.labels" -}}
{{ include "synod.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: synod
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "synod.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "synod.bootstrap" -}}
{{- if .Values.kafka.trial.enabled -}}
{{ include "synod.fullname" . }}-kafka:9092
{{- else -}}
{{ .Values.kafka.bootstrapServers }}
{{- end -}}
{{- end -}}

{{- define "synod.anthropicSecret" -}}
{{- .Values.anthropic.existingSecret | default (printf "%s-anthropic" (include "synod.fullname" .)) -}}
{{- end -}}

{{- define "synod.openaiSecret" -}}
{{- .Values.openai.existingSecret | default (printf "%s-openai" (include "synod.fullname" .)) -}}
{{- end -}}

{{/* Grace period: preStop sleep + drain bound + margin, so SIGKILL never cuts a drain short. */}}
{{- define "synod.gracePeriod" -}}
{{- add .Values.lifecycle.preStopSleepSeconds .Values.config.drainTimeoutSeconds .Values.lifecycle.terminationMarginSeconds -}}
{{- end -}}

{{- define "synod.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: {{ .Values.containerSecurityContext.readOnlyRootFilesystem }}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* "true" when KEDA ScaledObjects are rendered (asked for, and the cluster serves them). */}}
{{- define "synod.kedaOn" -}}
{{- if and .Values.keda.enabled (.Capabilities.APIVersions.Has "keda.sh/v1alpha1") -}}true{{- end -}}
{{- end -}}

{{/* "true" when Strimzi objects are rendered. */}}
{{- define "synod.strimziOn" -}}
{{- if and .Values.strimzi.enabled (.Capabilities.APIVersions.Has "kafka.strimzi.io/v1beta2") -}}true{{- end -}}
{{- end -}}

{{/* The roles this release runs, as a JSON array. */}}
{{- define "synod.roles" -}}
{{- $roles := list "gateway" "planner" "researcher" "coder" "reviewer" "consensus" -}}
{{- if .Values.supervisor.enabled }}{{ $roles = append $roles "supervisor" }}{{ end -}}
{{- toJson $roles -}}
{{- end -}}

{{/*
Environment shared by every Synod container: the ConfigMap plus secrets.
Arguments: root, component. With Strimzi users, each role logs in to Kafka
as its own KafkaUser (the password is in the Secret Strimzi creates for it).
*/}}
{{- define "synod.env" -}}
{{- $root := .root -}}
{{- with $root -}}
envFrom:
  - configMapRef:
      name: {{ include "synod.fullname" . }}
env:
  - name: ANTHROPIC_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ include "synod.anthropicSecret" . }}
        key: {{ .Values.anthropic.existingSecretKey }}
        # optional: the sim backend runs without a key.
        optional: true
  - name: OPENAI_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ include "synod.openaiSecret" . }}
        key: {{ .Values.openai.existingSecretKey }}
        # optional: a local OpenAI-compatible server needs no key.
        optional: true
  {{- if .Values.gateway.apiTokens }}
  - name: SYNOD_API_TOKENS
    valueFrom:
      secretKeyRef:
        name: {{ include "synod.fullname" . }}-gateway-tokens
        key: tokens
  {{- end }}
  {{- if .Values.signing.enabled }}
  # Signed messages (docs/security.md): every pod checks authorship against the
  # keyring; a reviewer's command names its own key (its ordinal is its voter id).
  - name: SYNOD_KEYRING_FILE
    value: /etc/synod/signing/keyring.json
  {{- if ne $.component "reviewer" }}
  - name: SYNOD_PRINCIPAL
    value: {{ $.component }}
  - name: SYNOD_SIGNING_KEY_FILE
    value: /etc/synod/signing/{{ $.component }}.key
  {{- end }}
  {{- end }}
  {{- if and (include "synod.strimziOn" .) .Values.strimzi.users }}
  - name: SYNOD_KAFKA_SECURITY_PROTOCOL
    value: {{ ternary "SASL_SSL" "SASL_PLAINTEXT" .Values.kafka.tls.enabled | quote }}
  - name: SYNOD_KAFKA_SASL_MECHANISM
    value: SCRAM-SHA-512
  - name: SYNOD_KAFKA_SASL_USERNAME
    value: {{ include "synod.fullname" . }}-{{ $.component }}
  - name: SYNOD_KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ include "synod.fullname" . }}-{{ $.component }}
        key: password
  {{- else if .Values.kafka.sasl.enabled }}
  - name: SYNOD_KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ .Values.kafka.sasl.existingSecret }}
        key: {{ .Values.kafka.sasl.passwordKey }}
  {{- end }}
{{- end -}}
{{- end -}}

{{- define "synod.volumeMounts" -}}
volumeMounts:
  # The root filesystem is read-only; Python and libraries still want a /tmp.
  - name: tmp
    mountPath: /tmp
  {{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
  - name: kafka-ca
    mountPath: /etc/synod/kafka-ca
    readOnly: true
  {{- end }}
{{- end -}}

{{- define "synod.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
  {{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
  - name: kafka-ca
    secret:
      secretName: {{ .Values.kafka.tls.caSecret }}
  {{- end }}
{{- end -}}

{{- define "synod.signingSecret" -}}
{{- .Values.signing.existingSecret | default (printf "%s-signing" (include "synod.fullname" .)) -}}
{{- end -}}

{{/* The principals whose private keys a role's pods hold: the role itself, or
each reviewer ordinal (one pod template serves every reviewer). */}}
{{- define "synod.principalsOf" -}}
{{- if eq .component "reviewer" -}}
{{- $names := list -}}
{{- range $n := until (int .root.Values.roles.reviewer.replicas) }}{{ $names = append $names (printf "reviewer-%d" $n) }}{{ end -}}
{{- toJson $names -}}
{{- else -}}
{{- toJson (list .component) -}}
{{- end -}}
{{- end -}}

{{/* Signing keys: the keyring and only this role's private keys. Arguments: root, component. */}}
{{- define "synod.signingMount" -}}
- name: signing
  mountPath: /etc/synod/signing
  readOnly: true
{{- end -}}

{{- define "synod.signingVolume" -}}
- name: signing
  secret:
    secretName: {{ include "synod.signingSecret" .root }}
    defaultMode: 0440
    items:
      - {key: keyring.json, path: keyring.json}
      {{- range $p := include "synod.principalsOf" . | fromJsonArray }}
      - {key: {{ $p }}.key, path: {{ $p }}.key}
      {{- end }}
{{- end -}}

{{/*
The pod template of a Synod role. Arguments: root, component, port (the port
serving /healthz /readyz /metrics), portName, command (list).
*/}}
{{- define "synod.podTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "synod.labels" . | nindent 4 }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- if $root.Values.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .port | quote }}
    prometheus.io/path: /metrics
    {{- end }}
spec:
  serviceAccountName: {{ include "synod.fullname" $root }}-{{ .component }}
  # Only the supervisor calls the Kubernetes API (it restarts and rescales agents).
  automountServiceAccountToken: {{ .kubeApi | default false }}
  terminationGracePeriodSeconds: {{ include "synod.gracePeriod" $root }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "synod.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command:
        {{- toYaml .command | nindent 8 }}
      ports:
        - name: {{ .portName }}
          containerPort: {{ .port }}
          protocol: TCP
      {{- include "synod.env" (dict "root" $root "component" .component) | nindent 6 }}
      {{- if .kubeApi }}
        - name: SYNOD_RUNTIME
          value: kubernetes
        - name: SYNOD_NAMESPACE
          valueFrom:
            fieldRef: {fieldPath: metadata.namespace}
        - name: SYNOD_RELEASE_FULLNAME
          value: {{ include "synod.fullname" $root }}
      {{- end }}
      startupProbe:
        httpGet: {path: /healthz, port: {{ .portName }}}
        periodSeconds: 2
        failureThreshold: 30
      livenessProbe:
        httpGet: {path: /healthz, port: {{ .portName }}}
        periodSeconds: 10
        failureThreshold: 3
      readinessProbe:
        httpGet: {path: /readyz, port: {{ .portName }}}
        periodSeconds: 5
        failureThreshold: 2
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ $root.Values.lifecycle.preStopSleepSeconds }}"]
      resources:
        {{- toYaml (get $root.Values.roles .component).resources | nindent 8 }}
      securityContext:
        {{- include "synod.containerSecurityContext" $root | nindent 8 }}
      {{- include "synod.volumeMounts" $root | nindent 6 }}
      {{- if $root.Values.signing.enabled }}
        {{- include "synod.signingMount" . | nindent 8 }}
      {{- end }}
  {{- include "synod.volumes" $root | nindent 2 }}
  {{- if $root.Values.signing.enabled }}
    {{- include "synod.signingVolume" . | nindent 4 }}
  {{- end }}
{{- end -}}
