output "env" {
  description = "The node's configuration as MERIDIAN_* environment variables."
  value       = local.env
}

output "env_file" {
  description = "The same, as the lines of a systemd EnvironmentFile."
  value       = join("", [for k in sort(keys(local.env)) : "${k}=${local.env[k]}\n"])
}

output "args" {
  description = "The same, as the arguments of `meridian server`."
  value = concat(["server"], [
    for k in sort(keys(local.env)) : "--${replace(lower(trimprefix(k, "MERIDIAN_")), "_", "-")}=${local.env[k]}"
  ])
}

output "api_address" {
  description = "The API address clients and other nodes use."
  value       = local.advertise.api
}
