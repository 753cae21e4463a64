-- SPDX-License-Identifier: GPL-2.0-or-later
-- Layout policy (docs/migration.md) after DINO (Blagodurov et al.), as paper
-- 001 uses it: spread the VMs with high LLC miss rates over different
-- nodes, so that no node's cache and memory controller carry two of
-- them. VMs go by mpki descending (ties: name); each goes to the node,
-- among those its vCPUs fit, with the lowest sum of mpki so far (ties:
-- the node it runs on now, then the lowest number). This pairs the most
-- memory-intensive VM with the least and balances mpki per node.
-- Decides only (vshare.place); no timers.
local vs = vshare

local function by_mpki(a, b)
  local x, y = vs.vm_mpki(a), vs.vm_mpki(b)
  if x ~= y then return x > y end
  return a.name < b.name
end

local function better(cap, sum, n, best, home, vm)
  local f, bf = vs.fits(cap, n, vm), vs.fits(cap, best, vm)
  if f ~= bf then return f end
  if sum[n] ~= sum[best] then return sum[n] < sum[best] end
  return n == home and best ~= home
end

local function sums_text(state, sum)
  local t = {}
  for _, n in ipairs(vs.node_ids(state)) do
    t[#t + 1] = string.format("node %d %.1f", n, sum[n])
  end
  return table.concat(t, ", ")
end

function layout(state, incoming)
  local cap, sum = vs.capacity(state), {}
  local vms = {}

  for _, n in ipairs(vs.node_ids(state)) do sum[n] = 0 end
  for i, vm in ipairs(state.vms) do vms[i] = vm end
  table.sort(vms, by_mpki)
  for i, vm in ipairs(vms) do
    local home, best = vs.vm_home(vm, state), nil
    for _, n in ipairs(vs.node_ids(state)) do
      if best == nil or better(cap, sum, n, best, home, vm) then best = n end
    end
    vs.place(vm.name, best, string.format(
      "mpki %.1f, #%d of %d: node %d has the lowest mpki sum (%s)%s",
      vs.vm_mpki(vm), i, #vms, best, sums_text(state, sum),
      vs.fits(cap, best, vm) and "" or "; no node fits its vCPUs"))
    sum[best] = sum[best] + vs.vm_mpki(vm)
    vs.take(cap, best, vm)
  end
end
