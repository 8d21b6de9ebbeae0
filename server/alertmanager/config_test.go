package alertmanager

import (
	"strings"
	"testing"
)

// TestParseConfigSettings: a realistic configuration with many
// integrations passes; each setting that reads the node's files or
// network is refused naming its path.
func TestParseConfigSettings(t *testing.T) {
	good := `global:
  smtp_smarthost: 'localhost:25'
  smtp_from: 'am@example.org'
  slack_api_url: 'https://hooks.slack.com/services/x'
route:
  receiver: all
  routes:
    - matchers: [severity="page"]
      receiver: pager
inhibit_rules:
  - source_matchers: [severity="page"]
    target_matchers: [severity="warning"]
    equal: [alertname]
receivers:
  - name: all
    email_configs: [{to: 'team@example.org'}]
    slack_configs: [{channel: '#alerts'}]
    webhook_configs:
      - url: http://h/
        http_config:
          basic_auth: {username: u, password: p}
          tls_config: {insecure_skip_verify: true}
  - name: pager
    pagerduty_configs: [{routing_key: k}]
    opsgenie_configs: [{api_key: k}]
`
	if _, _, err := ParseConfig(UserConfig{AlertmanagerConfig: good}); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct{ name, cfg, want string }{
		{"webhook url_file", "route: {receiver: r}\nreceivers:\n- name: r\n  webhook_configs: [{url_file: /etc/passwd}]\n", "receivers[0].webhook_configs[0].url_file: setting a file"},
		{"tls ca_file", "route: {receiver: r}\nreceivers:\n- name: r\n  webhook_configs: [{url: 'http://h/', http_config: {tls_config: {ca_file: /etc/ssl/x}}}]\n", "ca_file: setting a file"},
		{"bearer token file", "global: {http_config: {bearer_token_file: /var/run/secrets/token}}\nroute: {receiver: r}\nreceivers: [{name: r}]\n", "credentials_file: setting a file"}, // config.Load moves bearer_token_file there
		{"slack api_url_file", "global: {slack_api_url_file: /x}\nroute: {receiver: r}\nreceivers: [{name: r}]\n", "slack_api_url_file: setting a file"},
		{"proxy", "route: {receiver: r}\nreceivers:\n- name: r\n  webhook_configs: [{url: 'http://h/', http_config: {proxy_url: 'http://10.0.0.1:3128'}}]\n", "proxy_url is not allowed"},
		{"template glob with a directory", "templates: ['/etc/*.tmpl']\nroute: {receiver: r}\nreceivers: [{name: r}]\n", "without a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseConfig(UserConfig{AlertmanagerConfig: tc.cfg})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
