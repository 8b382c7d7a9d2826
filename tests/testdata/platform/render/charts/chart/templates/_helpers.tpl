{{- define "web.name" -}}{{ .Release.Name }}-settings{{- end -}}
