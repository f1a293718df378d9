{{/* Name of the chart, overridable. */}}
{{- define "kube-lighthouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of the release's objects: the release name when it already contains the
chart name (`helm install kube-lighthouse …`), else <release>-<chart>.
*/}}
{{- define "kube-lighthouse.fullname" -}}
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

{{- define "kube-lighthouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "kube-lighthouse.labels" -}}
helm.sh/chart: {{ include "kube-lighthouse.chart" . }}
{{ include "kube-lighthouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-lighthouse
{{- end }}

{{/* Labels that select the controller's pod. */}}
{{- define "kube-lighthouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-lighthouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "kube-lighthouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-lighthouse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The controller image: repository@digest, or repository:tag (default appVersion). */}}
{{- define "kube-lighthouse.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
The common part of each webhook: how the API server reaches it.
*/}}
{{- define "kube-lighthouse.webhookClient" -}}
clientConfig:
  service:
    name: {{ .service }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path | default "/validate" }}
    port: 443
  {{- if .caBundle }}
  caBundle: {{ .caBundle }}
  {{- end }}
sideEffects: {{ .sideEffects | default "None" }}
admissionReviewVersions: ["v1"]
timeoutSeconds: {{ .root.Values.webhook.timeoutSeconds }}
{{- end }}

{{/*
Whether the controller serves its TLS server (admission webhook, views API, sign-in broker):
"true" or empty.
*/}}
{{- define "kube-lighthouse.tlsServer" -}}
{{- if or .Values.webhook.enabled .Values.views.enabled .Values.federation.enabled }}true{{ end }}
{{- end }}

{{/*
The sign-in broker's issuer URL: federation.issuer, else https://<federation.ingress.host>/federation.
*/}}
{{- define "kube-lighthouse.federationIssuer" -}}
{{- if .Values.federation.issuer }}
{{- .Values.federation.issuer | trimSuffix "/" }}
{{- else if and .Values.federation.ingress.enabled .Values.federation.ingress.host }}
{{- printf "https://%s/federation" .Values.federation.ingress.host }}
{{- else }}
{{- fail "federation.enabled needs federation.issuer (the public https URL ending in /federation) or federation.ingress.host" }}
{{- end }}
{{- end }}

{{/* The Secret holding the sign-in broker's signing keys. */}}
{{- define "kube-lighthouse.federationKeysSecret" -}}
{{- default (printf "%s-federation-keys" (include "kube-lighthouse.fullname" .)) .Values.federation.keys.secretName }}
{{- end }}

{{/*
Whether the admission webhook is served: webhook.enabled, and not a hub (a hub admits nothing).
*/}}
{{- define "kube-lighthouse.webhookServed" -}}
{{- if and .Values.webhook.enabled (not .Values.hub.enabled) }}true{{ end }}
{{- end }}

{{/*
Whether GET /metrics is served: metrics.port, and not a hub (a hub serves no metrics).
*/}}
{{- define "kube-lighthouse.metricsServed" -}}
{{- if and (gt (int .Values.metrics.port) 0) (not .Values.hub.enabled) }}true{{ end }}
{{- end }}
