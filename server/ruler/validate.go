package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// ParseGroups reads the body of a POST to a namespace and validates it
// as promtool does (rulefmt): either one rule group, as cortextool and
// mimirtool send it, or a Prometheus rule file ("groups:" and a list),
// whose group names must differ. Every problem is reported at once, each
// with the line and column in body where rulefmt knows them, e.g.
// `5:11: group "g", rule 1, "r": could not parse expression: ...`.
func ParseGroups(body []byte, p parser.Parser) ([]rulefmt.RuleGroup, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("invalid rules config: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("invalid rules config: empty body, want a rule group")
	}
	if m := doc.Content[0]; m.Kind == yaml.MappingNode && len(m.Content) >= 2 && m.Content[0].Value == "groups" {
		// rulefmt reports a repeated group at 0:0 (its group nodes carry
		// no position): say where the name is repeated.
		if err := repeatedGroup(m.Content[1]); err != nil {
			return nil, fmt.Errorf("invalid rules config: %w", err)
		}
		rgs, errs := rulefmt.Parse(body, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
		if len(errs) > 0 {
			return nil, fmt.Errorf("invalid rules config: %w", errors.Join(errs...))
		}
		for _, g := range rgs.Groups {
			if len(g.Rules) == 0 {
				return nil, fmt.Errorf("invalid rules config: rule group %q has no rules", g.Name)
			}
		}
		return rgs.Groups, nil
	}
	g, err := parseGroup(body, p)
	if err != nil {
		return nil, err
	}
	return []rulefmt.RuleGroup{g}, nil
}

// parseGroup validates one group as rulefmt.RuleGroups.Validate does
// for each group of a file (its positions are relative to body).
func parseGroup(body []byte, p parser.Parser) (rulefmt.RuleGroup, error) {
	var g rulefmt.RuleGroup
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil && !errors.Is(err, io.EOF) {
		return g, fmt.Errorf("invalid rules config: %w", err)
	}
	var node rulefmt.RuleGroupNode
	if err := yaml.Unmarshal(body, &node); err != nil {
		return g, fmt.Errorf("invalid rules config: %w", err)
	}
	var errs []error
	if g.Name == "" {
		errs = append(errs, errors.New("rule group name must not be empty"))
	}
	if len(g.Rules) == 0 {
		errs = append(errs, fmt.Errorf("rule group %q has no rules", g.Name))
	}
	for k, v := range g.Labels {
		if !model.UTF8Validation.IsValidLabelName(k) || k == model.MetricNameLabel {
			errs = append(errs, fmt.Errorf("invalid label name: %s", k))
		}
		if !model.LabelValue(v).IsValid() {
			errs = append(errs, fmt.Errorf("invalid label value: %s", v))
		}
	}
	for i, r := range g.Rules {
		name := r.Record
		if r.Alert != "" {
			name = r.Alert
		}
		for _, we := range r.Validate(node.Rules[i], model.UTF8Validation, p) {
			errs = append(errs, &rulefmt.Error{Group: g.Name, Rule: i + 1, RuleName: name, Err: we})
		}
	}
	if len(errs) > 0 {
		return g, fmt.Errorf("invalid rules config: %w", errors.Join(errs...))
	}
	return g, nil
}

// repeatedGroup returns the first group name of seq given twice, at its
// second place.
func repeatedGroup(seq *yaml.Node) error {
	if seq.Kind != yaml.SequenceNode {
		return nil // rulefmt says what is wrong
	}
	seen := map[string]bool{}
	for _, g := range seq.Content {
		if g.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(g.Content); i += 2 {
			if g.Content[i].Value != "name" {
				continue
			}
			v := g.Content[i+1]
			if seen[v.Value] {
				return fmt.Errorf("%d:%d: groupname: %q is repeated in the same file", v.Line, v.Column, v.Value)
			}
			seen[v.Value] = true
		}
	}
	return nil
}
