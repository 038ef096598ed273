// Package config loads sockwarden's typed configuration. It is the only
// package that imports viper: everyone else receives a Config.
//
// Sources, lowest precedence first: built-in defaults (Defaults), the YAML
// file (default /etc/sockwarden/config.yaml; absent is fine unless named
// explicitly), environment variables SOCKWARDEN_<SECTION>_<KEY> (for example
// SOCKWARDEN_DIAGNOSE_INTERVAL=2s), then command-line flags bound by the
// caller. An unknown key or a bad value is an error that names the key.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/sockwarden/sockwarden/internal/fsperm"
)

// DefaultPath is where the config file is looked for when none is named.
const DefaultPath = "/etc/sockwarden/config.yaml"

// defaultPath is DefaultPath; a test points it at a file that is not there,
// whatever the machine running it has installed.
var defaultPath = DefaultPath

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("config")

// Config is the whole typed configuration. Each section lives in its own
// file with its defaults and validation.
type Config struct {
	// LogLevel: debug, info, warn or error.
	LogLevel string `mapstructure:"log_level"`
	// LogFormat: auto (journald under systemd, console on a terminal,
	// JSON otherwise), console, json or journald.
	LogFormat string `mapstructure:"log_format"`
	// StateDir holds the approvals store and the change journal.
	StateDir string `mapstructure:"state_dir"`
	// Netns is the network namespace path to work on ("" = our own).
	Netns string `mapstructure:"netns"`

	Sample    Sample    `mapstructure:"sample"`
	Diagnose  Diagnose  `mapstructure:"diagnose"`
	Remediate Remediate `mapstructure:"remediate"`
	Verify    Verify    `mapstructure:"verify"`
	Agent     Agent     `mapstructure:"agent"`
	Metrics   Metrics   `mapstructure:"metrics"`
	Fleet     Fleet     `mapstructure:"fleet"`

	// File is the config file actually read ("" when none).
	File string `mapstructure:"-"`
}

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		LogLevel:  "info",
		LogFormat: "auto",
		StateDir:  "/var/lib/sockwarden",
		Sample:    defaultSample(),
		Diagnose:  defaultDiagnose(),
		Remediate: defaultRemediate(),
		Verify:    defaultVerify(),
		Agent:     defaultAgent(),
		Metrics:   defaultMetrics(),
		Fleet:     defaultFleet(),
	}
}

// Options says where Load looks.
type Options struct {
	// File is the config file; "" means DefaultPath, which may be absent.
	File string
	// Flags, when set, override file and environment. Each flag is bound
	// to the config key in its annotation "config" (see BindFlag), or to
	// its own name when that is a known key.
	Flags *pflag.FlagSet
	// Env is the environment to read ("" keys ignored); nil means
	// os.Environ().
	Env []string
}

// BindFlag marks flag name of fs as setting config key.
func BindFlag(fs *pflag.FlagSet, name, key string) {
	if err := fs.SetAnnotation(name, "config", []string{key}); err != nil {
		panic(err) // programming error: the flag does not exist
	}
}

// Load reads the configuration.
func Load(opts Options) (Config, error) {
	v := viper.New()
	def := Defaults()
	var keys []string
	eachLeaf(reflect.ValueOf(def), "", func(key string, val reflect.Value) {
		keys = append(keys, key)
		v.SetDefault(key, val.Interface())
	})

	file := opts.File
	explicit := file != ""
	if !explicit {
		file = defaultPath
	}
	cfgFile := ""
	if b, err := readTrusted(file); err == nil {
		v.SetConfigType("yaml")
		if err := v.ReadConfig(strings.NewReader(string(b))); err != nil {
			return Config{}, fmt.Errorf("%w: %s: %w", ErrConfig, file, err)
		}
		cfgFile = file
	} else if explicit || !errors.Is(err, fs.ErrNotExist) {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}

	// Environment: only known keys, SOCKWARDEN_ + key with dots as _.
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	envKeys := map[string]string{}
	for _, k := range keys {
		envKeys["SOCKWARDEN_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = k
	}
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "SOCKWARDEN_") {
			continue
		}
		k, known := envKeys[name]
		if !known {
			return Config{}, fmt.Errorf("%w: environment variable %s is not a sockwarden setting", ErrConfig, name)
		}
		v.Set(k, val)
	}

	if opts.Flags != nil {
		known := knownKeys(keys)
		opts.Flags.Visit(func(f *pflag.Flag) {
			key, ok := flagKey(f, known)
			if !ok {
				return
			}
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				v.Set(key, sv.GetSlice())
				return
			}
			v.Set(key, f.Value.String())
		})
	}

	var c Config
	dc := &mapstructure.DecoderConfig{
		Result:           &c,
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		TagName:          "mapstructure",
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			strictScalars,
			mapstructure.StringToSliceHookFunc(","),
		),
	}
	dec, err := mapstructure.NewDecoder(dc)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := dec.Decode(v.AllSettings()); err != nil {
		return Config{}, fmt.Errorf("%w: %s: %w", ErrConfig, nameOr(cfgFile, "settings"), cleanDecodeErr(err))
	}
	c.File = cfgFile
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w: %s: %w", ErrConfig, nameOr(cfgFile, "settings"), err)
	}
	return c, nil
}

// readTrusted reads the config file, refusing one that another user, or
// group or others, may write, or that sits under a directory they may write
// (the same rule as the state directory, internal/fsperm): the file can
// grant standing approvals, changes applied with no operator.
func readTrusted(file string) ([]byte, error) {
	// O_NONBLOCK: a FIFO named as the config must be refused, not wait
	// for a writer (no effect on a regular file).
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := fsperm.File(f, file); err != nil {
		return nil, fmt.Errorf("%w (the config file can grant standing approvals)", err)
	}
	return io.ReadAll(f)
}

// strictScalars converts what the file (YAML numbers and booleans), the
// environment and flags (strings) give to integer, float, boolean and
// duration keys, refusing what weak typing would round or guess: 2.7 or
// true for a whole number (mapstructure truncates a float and reads true as
// 1), a number for a boolean, a value out of its type's range (it wrapped
// to -9223372036854775808). Each error names the value given; mapstructure
// adds the key.
func strictScalars(from, to reflect.Type, data any) (any, error) {
	if to == durationType {
		if s, ok := data.(string); ok {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration such as 5s, 2m or 1h30m: %w", s, err)
			}
			return d, nil
		}
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := to.Bits()
		lo, hi := int64(-1)<<(bits-1), int64(1<<(bits-1)-1)
		var n int64
		switch v := reflect.ValueOf(data); v.Kind() {
		case reflect.String:
			s := strings.TrimSpace(v.String())
			i, err := strconv.ParseInt(s, 10, 64)
			if errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Errorf("%s is out of range (%d to %d)", s, lo, hi)
			} else if err != nil {
				return nil, fmt.Errorf("%q is not a whole number", s)
			}
			n = i
		case reflect.Float32, reflect.Float64:
			f := v.Float()
			if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, fmt.Errorf("%v is not a whole number (not rounded)", f)
			}
			if f < float64(lo) || f >= -float64(lo) {
				return nil, fmt.Errorf("%v is out of range (%d to %d)", f, lo, hi)
			}
			n = int64(f)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			n = v.Int()
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if v.Uint() > uint64(hi) {
				return nil, fmt.Errorf("%d is out of range (%d to %d)", v.Uint(), lo, hi)
			}
			n = int64(v.Uint())
		default:
			return nil, fmt.Errorf("%v is not a whole number", data)
		}
		if n < lo || n > hi {
			return nil, fmt.Errorf("%d is out of range (%d to %d)", n, lo, hi)
		}
		return reflect.ValueOf(n).Convert(to).Interface(), nil
	case reflect.Float32, reflect.Float64:
		switch v := reflect.ValueOf(data); v.Kind() {
		case reflect.String:
			s := strings.TrimSpace(v.String())
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, fmt.Errorf("%q is not a number", s)
			}
			return f, nil
		case reflect.Bool:
			return nil, fmt.Errorf("%v is not a number", data)
		}
	case reflect.Bool:
		switch v := reflect.ValueOf(data); v.Kind() {
		case reflect.String:
			b, err := strconv.ParseBool(strings.TrimSpace(v.String()))
			if err != nil {
				return nil, fmt.Errorf("%q is not true or false", v.String())
			}
			return b, nil
		case reflect.Bool:
		default:
			return nil, fmt.Errorf("%v is not true or false", data)
		}
	}
	return data, nil
}

func nameOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// cleanDecodeErr turns mapstructure's report into one line per problem, each
// naming the key the way users write it ("diagnose.interval").
func cleanDecodeErr(err error) error {
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "decoding failed") {
			continue
		}
		line = strings.TrimPrefix(line, "* ")
		// "'diagnose' has invalid keys: intervall" -> "diagnose.intervall: unknown key"
		if sec, rest, ok := strings.Cut(line, " has invalid key"); ok {
			sec = strings.Trim(sec, "'")
			keys := strings.TrimPrefix(strings.TrimPrefix(rest, "s"), ": ")
			for _, k := range strings.Split(keys, ", ") {
				if sec != "config.Config" && sec != "" {
					k = sec + "." + k
				}
				out = append(out, k+": unknown key")
			}
			continue
		}
		// "'diagnose.interval' time: invalid duration" -> "diagnose.interval: time: invalid duration"
		if strings.HasPrefix(line, "'") {
			if end := strings.Index(line[1:], "'"); end >= 0 {
				line = line[1:end+1] + ":" + line[end+2:]
			}
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return err
	}
	return errors.New(strings.Join(out, "; "))
}

// Validate checks every section; the error names the key.
func (c Config) Validate() error {
	var errs []error
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "auto", "console", "json", "journald":
	default:
		errs = append(errs, fmt.Errorf("log_format: %q is not one of auto, console, json, journald", c.LogFormat))
	}
	if c.StateDir == "" || !strings.HasPrefix(c.StateDir, "/") {
		errs = append(errs, fmt.Errorf("state_dir: %q must be an absolute path", c.StateDir))
	}
	errs = append(errs,
		c.Sample.validate(), c.Diagnose.validate(), c.Remediate.validate(),
		c.Verify.validate(), c.Agent.validate(), c.Metrics.validate(), c.Fleet.validate())
	return errors.Join(errs...)
}

// Keys lists every configuration key in dotted form, sorted.
func Keys() []string {
	var k []string
	eachLeaf(reflect.ValueOf(Config{}), "", func(key string, _ reflect.Value) { k = append(k, key) })
	sort.Strings(k)
	return k
}

var durationType = reflect.TypeOf(time.Duration(0))

// eachLeaf calls leaf with every configuration key under val and the
// key's value, in field order: a field's mapstructure tag is its name
// (untagged and "-" fields are no keys), and a struct field other than a
// time.Duration holds keys of its own under its name and a dot. Keys, the
// defaults Load sets and config show all walk the struct through it, so
// that they cannot disagree on what a key is.
func eachLeaf(val reflect.Value, prefix string, leaf func(key string, val reflect.Value)) {
	t := val.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "-" || tag == "" {
			continue
		}
		key := prefix + tag
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			eachLeaf(val.Field(i), key+".", leaf)
			continue
		}
		leaf(key, val.Field(i))
	}
}

// positive is a small helper for validators.
func positive(key string, n int) error {
	if n <= 0 {
		return fmt.Errorf("%s: must be positive, got %d", key, n)
	}
	return nil
}

func positiveDur(key string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s: must be a positive duration, got %s", key, d)
	}
	return nil
}

func knownKeys(keys []string) map[string]bool {
	known := make(map[string]bool, len(keys))
	for _, k := range keys {
		known[k] = true
	}
	return known
}

// flagKey is the config key a command-line flag sets: the one its "config"
// annotation names, else its own name when that is a key; ok is false for
// a flag that sets no key.
func flagKey(f *pflag.Flag, known map[string]bool) (key string, ok bool) {
	if a := f.Annotations["config"]; len(a) == 1 {
		return a[0], true
	}
	return f.Name, known[f.Name]
}
