package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Sources of a setting, as `sockwarden config show` names them.
const (
	SourceDefault = "default"
	SourceFile    = "file"
	SourceEnv     = "env"
	SourceFlag    = "flag"
)

// Setting is one key of the effective configuration and where its value
// came from. Origin says which file, variable or flag ("" for a default).
type Setting struct {
	Key    string `json:"key"`
	Value  any    `json:"value"`
	Source string `json:"source"`
	Origin string `json:"origin,omitempty"`
}

// Explain loads the configuration as Load does and says, for every key,
// where its value came from: the default, the file, a SOCKWARDEN_*
// variable or a flag, the last one that set it winning as in Load.
func Explain(opts Options) (Config, []Setting, error) {
	c, err := Load(opts)
	if err != nil {
		return Config{}, nil, err
	}
	src := map[string]Setting{}
	if c.File != "" {
		v := viper.New()
		v.SetConfigType("yaml")
		b, err := readTrusted(c.File)
		if err != nil {
			return Config{}, nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if err := v.ReadConfig(strings.NewReader(string(b))); err != nil {
			return Config{}, nil, fmt.Errorf("%w: %s: %w", ErrConfig, c.File, err)
		}
		for _, k := range Keys() {
			if v.InConfig(k) {
				src[k] = Setting{Source: SourceFile, Origin: c.File}
			}
		}
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if k, ok := envKeyOf(name); ok {
			src[k] = Setting{Source: SourceEnv, Origin: name}
		}
	}
	if opts.Flags != nil {
		known := knownKeys(Keys())
		opts.Flags.Visit(func(f *pflag.Flag) {
			key, ok := flagKey(f, known)
			if !ok {
				return
			}
			src[key] = Setting{Source: SourceFlag, Origin: "--" + f.Name}
		})
	}
	vals := map[string]any{}
	flatten(reflect.ValueOf(c), vals)
	var out []Setting
	for _, k := range Keys() {
		s, ok := src[k]
		if !ok {
			s = Setting{Source: SourceDefault}
		}
		s.Key, s.Value = k, vals[k]
		out = append(out, s)
	}
	return c, out, nil
}

// envKeyOf maps a SOCKWARDEN_* variable to its key, as Load does.
func envKeyOf(name string) (string, bool) {
	if !strings.HasPrefix(name, "SOCKWARDEN_") {
		return "", false
	}
	for _, k := range Keys() {
		if name == "SOCKWARDEN_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_")) {
			return k, true
		}
	}
	return "", false
}

// flatten writes the leaf values of a config struct by dotted key, as a
// person writes them in the file: durations as "5s", lists as lists.
func flatten(val reflect.Value, out map[string]any) {
	eachLeaf(val, "", func(key string, fv reflect.Value) {
		switch t := fv.Type(); {
		case t == durationType:
			out[key] = time.Duration(fv.Int()).String()
		case t.Kind() == reflect.Slice && fv.IsNil():
			out[key] = reflect.MakeSlice(t, 0, 0).Interface()
		case t.Kind() == reflect.String:
			// Named string types (AgentMode, OnRestart) are written
			// as the plain strings a person puts in the file.
			out[key] = fv.String()
		default:
			out[key] = fv.Interface()
		}
	})
}

// Check reads one configuration file alone, neither the environment nor
// flags, and says what is wrong with it, naming the key: the check an
// operator runs before putting a file in place (sockwarden config check).
func Check(file string) error {
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	_, err := Load(Options{File: file, Env: []string{}})
	return err
}
