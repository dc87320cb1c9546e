/// The version of this release, as `spillway --version`, the User-Agent and `telemetry.sdk.version` say.
package let spillwayVersion = "0.2.0"
