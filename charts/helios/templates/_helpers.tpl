{{/* The base name of every object: the release name when it contains "helios", else
release-helios. With the release `helios` the names are those of deploy/. */}}
{{- define "helios.fullname" -}}
{{- if contains "helios" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-helios" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object: deploy/'s app.kubernetes.io/name plus Helm's own. */}}
{{- define "helios.labels" -}}
app.kubernetes.io/name: helios
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector of the webhook pods. */}}
{{- define "helios.selector" -}}
app.kubernetes.io/name: helios
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "helios.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "helios.laceworkSecret" -}}
{{- .Values.lacework.existingSecret | default (printf "%s-lacework" (include "helios.fullname" .)) -}}
{{- end -}}

{{- define "helios.policyConfigMap" -}}
{{- .Values.policy.existingConfigMap | default (printf "%s-policy" (include "helios.fullname" .)) -}}
{{- end -}}

{{- define "helios.tlsSecret" -}}
{{- if .Values.certificate.certManager.enabled -}}
{{- printf "%s-webhook-tls" (include "helios.fullname" .) -}}
{{- else -}}
{{- required "certificate.secretName is required when certificate.certManager.enabled is false" .Values.certificate.secretName -}}
{{- end -}}
{{- end -}}

{{/* The webhook's failurePolicy follows failurePolicy: closed -> Fail, open -> Ignore. */}}
{{- define "helios.apiFailurePolicy" -}}
{{- if eq .Values.failurePolicy "closed" -}}Fail{{- else if eq .Values.failurePolicy "open" -}}Ignore{{- else -}}
{{- fail (printf "failurePolicy must be closed or open, not %q" .Values.failurePolicy) -}}
{{- end -}}
{{- end -}}

{{/* What the validating and the mutating webhook share: service, namespaces, rules. */}}
{{- define "helios.webhookCommon" -}}
clientConfig:
  service:
    name: {{ include "helios.fullname" . }}-webhook
    namespace: {{ .Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- if not .Values.certificate.certManager.enabled }}
  {{- $_ := include "helios.tlsSecret" . }}
  caBundle: {{ required "certificate.caBundle is required when certificate.certManager.enabled is false" .Values.certificate.caBundle }}
  {{- end }}
namespaceSelector:
  matchExpressions:
    - key: helios.dev/admission
      operator: NotIn
      values: ["disabled"]
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ concat .Values.namespaces.exclude (list .Release.Namespace) | uniq | toJson }}
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"]
    scope: Namespaced
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
    scope: Namespaced
  - apiGroups: ["batch"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["jobs", "cronjobs"]
    scope: Namespaced
{{- end -}}

{{- define "helios.caAnnotation" -}}
{{- if .Values.certificate.certManager.enabled }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "helios.fullname" . }}-webhook
{{- end }}
{{- end -}}
