package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v2"
)

// configFileError is a --config-file that cannot be read or is invalid.
type configFileError struct {
	path string
	err  error
}

func (e *configFileError) Error() string { return fmt.Sprintf("config file %s: %v", e.path, e.err) }
func (e *configFileError) Unwrap() error { return e.err }

// loadConfigFile reads the options from the YAML file at path, etcd's
// --config-file. Its keys are the flag names, as in etcd, and start from
// the flags' defaults; nothing else (command line, environment) counts.
//
// Values have etcd's types: URL lists and --initial-cluster are
// comma-separated strings, log-outputs a list, durations integer
// nanoseconds (as etcd, whose file goes through JSON) or, in addition, Go
// duration strings ("10m"). A key whose value is null keeps its default, as
// in etcd. Unlike etcd, which ignores keys it does not know, a key that is
// no option (a typo) or an etcd option Cairn does not implement is an error;
// only the keys of older etcd versions that etcd v3.7 ignores
// (ignoredKeys) are ignored here too.
func loadConfigFile(path string) (*options, error) {
	o, err := readConfigFile(path)
	if err != nil {
		return nil, &configFileError{path: path, err: err}
	}
	return o, nil
}

func readConfigFile(path string) (*options, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.MapSlice
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	o := &options{}
	fs, fileOnly := newFlagSet(o, io.Discard), fileOnlyFlags(o)
	o.configFile = path
	seen := map[string]bool{}
	for _, item := range doc {
		key, ok := item.Key.(string)
		if !ok {
			return nil, fmt.Errorf("key %v is not a string", item.Key)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		if ignoredKeys[key] {
			if item.Value != nil {
				o.ignoredKeys = append(o.ignoredKeys, key)
			}
			continue
		}
		if sub, ok := mappingKeys[key]; ok {
			if err := setTransport(fs, fileOnly, key, sub, item.Value); err != nil {
				return nil, err
			}
			continue
		}
		if err := setFromYAML(fs, key, item.Value); err != nil {
			return nil, err
		}
	}
	o.noteGatedFlags(fs)
	o.noteNoEffect(fs)
	o.noteDeprecated(fs)
	return o, checkDefaultOnly(fs)
}

// notFileKeys are flags that have no config-file key in etcd: the TLS
// files and switches are set in client-transport-security and
// peer-transport-security instead (mappingKeys).
var notFileKeys = keySet(`
	config-file version
	cert-file key-file client-cert-file client-key-file client-cert-auth client-crl-file
	client-cert-allowed-hostname trusted-ca-file auto-tls
	peer-cert-file peer-key-file peer-client-cert-file peer-client-key-file peer-client-cert-auth
	peer-trusted-ca-file peer-auto-tls peer-crl-file peer-cert-allowed-cn peer-cert-allowed-hostname
	peer-skip-client-san-verification
	socket-reuse-port socket-reuse-address
	raft-read-timeout raft-write-timeout
`)

// mappingKeys map the keys of etcd's config-file mappings
// (client-transport-security, peer-transport-security, socket-options) to
// the flags they set, or, for the two client options etcd has no flag
// for, to fileOnlyFlags'.
var mappingKeys = map[string]map[string]string{
	"client-transport-security": {
		"cert-file": "cert-file", "key-file": "key-file",
		"client-cert-file": "client-cert-file", "client-key-file": "client-key-file",
		"client-cert-auth": "client-cert-auth", "trusted-ca-file": "trusted-ca-file", "auto-tls": "auto-tls",
		"allowed-cn": "client-allowed-cn", "allowed-hostname": "client-cert-allowed-hostname",
		"skip-client-san-verification": "client-skip-client-san-verification",
	},
	"socket-options": {"reuse-port": "socket-reuse-port", "reuse-address": "socket-reuse-address"},
	"peer-transport-security": {
		"cert-file": "peer-cert-file", "key-file": "peer-key-file",
		"client-cert-file": "peer-client-cert-file", "client-key-file": "peer-client-key-file",
		"client-cert-auth": "peer-client-cert-auth", "trusted-ca-file": "peer-trusted-ca-file", "auto-tls": "peer-auto-tls",
		"allowed-cn": "peer-cert-allowed-cn", "allowed-hostname": "peer-cert-allowed-hostname",
		"skip-client-san-verification": "peer-skip-client-san-verification",
	},
}

// fileOnlyFlags binds the client options that only the config file sets,
// as etcd has them: allowed CNs of client certificates, and skipping the
// SAN check of the https metrics listener.
func fileOnlyFlags(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("config file", flag.ContinueOnError)
	fs.Var(newStringList(&o.tls.client.allowedCNs), "client-allowed-cn", "")
	fs.BoolVar(&o.tls.client.skipClientSANVerify, "client-skip-client-san-verification", false, "")
	return fs
}

// setTransport sets the flags (in fs, or else in fileOnly) of one of the
// mappings of mappingKeys.
func setTransport(fs, fileOnly *flag.FlagSet, key string, sub map[string]string, v any) error {
	if v == nil {
		return nil
	}
	m, ok := v.(yaml.MapSlice)
	if !ok {
		return typeError(key, "a mapping", v)
	}
	for _, item := range m {
		k, _ := item.Key.(string)
		name, ok := sub[k]
		if !ok {
			return fmt.Errorf("unknown key %q in %q", item.Key, key)
		}
		target := fs
		if fs.Lookup(name) == nil {
			target = fileOnly
		}
		if err := setFlag(target, name, key+"."+k, item.Value); err != nil {
			return err
		}
	}
	return nil
}

// setFromYAML sets flag key from its YAML value, checking the type.
func setFromYAML(fs *flag.FlagSet, key string, v any) error {
	f := fs.Lookup(key)
	if f == nil || notFileKeys[key] {
		switch {
		case !etcdOnlyKeys[key]:
			return fmt.Errorf("unknown key %q", key)
		case v == nil:
			return nil // unset, as in etcd
		default:
			return fmt.Errorf("key %q: etcd's option is not supported by cairn (remove it, or leave its value empty)", key)
		}
	}
	return setFlag(fs, key, key, v)
}

// setFlag sets flag name from the YAML value v of key.
func setFlag(fs *flag.FlagSet, name, key string, v any) error {
	f := fs.Lookup(name)
	if v == nil {
		return nil
	}
	var s string
	switch def := f.Value.(flag.Getter).Get().(type) {
	case bool:
		b, ok := v.(bool)
		if !ok {
			return typeError(key, "a boolean", v)
		}
		s = strconv.FormatBool(b)
	case int, int64, uint, uint64:
		n, ok := yamlInt(v)
		if !ok {
			return typeError(key, "an integer", v)
		}
		s = n
	case time.Duration:
		if n, ok := yamlInt(v); ok {
			d, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return fmt.Errorf("key %q: %v", key, err)
			}
			s = time.Duration(d).String()
		} else if str, ok := v.(string); ok {
			s = str
		} else {
			return typeError(key, "integer nanoseconds or a duration string", v)
		}
	case string:
		if n, ok := yamlInt(v); ok {
			s = n
		} else if str, ok := v.(string); ok {
			s = str
		} else {
			return typeError(key, "a string", v)
		}
	case []string:
		if str, ok := v.(string); ok {
			s = str
			break
		}
		list, ok := v.([]any)
		if !ok {
			return typeError(key, "a list of strings", v)
		}
		items := make([]string, len(list))
		for i, e := range list {
			if items[i], ok = e.(string); !ok || strings.Contains(items[i], ",") {
				return typeError(key, "a list of strings without commas", v)
			}
		}
		s = strings.Join(items, ",")
	default:
		panic(fmt.Sprintf("flag --%s has a value of type %T, unknown to the config file", key, def))
	}
	if err := fs.Set(name, s); err != nil {
		return fmt.Errorf("key %q: invalid value %q: %v", key, s, err)
	}
	return nil
}

func typeError(key, want string, got any) error {
	return fmt.Errorf("key %q: want %s, got %T %v", key, want, got, got)
}

// yamlInt returns v in decimal if YAML decoded it as an integer.
func yamlInt(v any) (string, bool) {
	switch n := v.(type) {
	case int:
		return strconv.Itoa(n), true
	case int64:
		return strconv.FormatInt(n, 10), true
	case uint64:
		return strconv.FormatUint(n, 10), true
	}
	return "", false
}

// etcdOnlyKeys are etcd v3.7 config-file keys with no Cairn flag. They
// are refused with a clear message unless empty (see setFromYAML).
var etcdOnlyKeys = keySet(`
	discovery-config
`)

// ignoredKeys are keys of older etcd versions' config files (the v2 proxy,
// v2 discovery, v2 API and capnslog options of etcd's sample file) that
// etcd v3.7 no longer has and ignores, whatever their value. Cairn ignores
// them too, so etcd's sample file starts a member, and logs the ones given
// a value at start-up ("config file keys etcd v3.7 no longer has;
// ignored").
var ignoredKeys = keySet(`
	discovery discovery-fallback discovery-proxy
	proxy proxy-failure-wait proxy-refresh-interval proxy-dial-timeout proxy-write-timeout proxy-read-timeout
	enable-v2 debug log-package-levels
`)

func keySet(keys string) map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(keys) {
		m[k] = true
	}
	return m
}
