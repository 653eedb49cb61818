output "api_endpoints" {
  description = "API endpoints (https://host:port with TLS, else http://host:port) of every node of the region."
  value       = [for c in module.node_config : "${local.tls_on ? "https" : "http"}://${c.api_address}"]
}

output "seed_address" {
  description = "API address (host:port) of the region's first node: what other regions join through."
  value       = local.seed
}

output "node_cidrs" {
  description = "Public addresses of the nodes as /32 CIDRs, for the other regions' peer_cidrs."
  value       = [for e in aws_eip.node : "${e.public_ip}/32"]
}

output "security_group_id" {
  description = "The nodes' security group."
  value       = aws_security_group.node.id
}

output "instance_count" {
  description = "Instances created for the region."
  value       = length(aws_instance.node)
}

output "instance_zones" {
  description = "Availability zone of each node's subnet, in node order."
  value       = [for i in aws_instance.node : aws_subnet.zone[index(aws_subnet.zone[*].id, i.subnet_id)].availability_zone]
}

output "ingress_rules" {
  description = "The security group's ingress rules as protocol/port/cidr strings."
  value       = sort([for r in aws_vpc_security_group_ingress_rule.node : "${r.ip_protocol}/${r.from_port}/${r.cidr_ipv4}"])
}

output "user_data" {
  description = "Each node's rendered cloud-init (holds the gossip key)."
  value       = aws_instance.node[*].user_data
  sensitive   = true
}
