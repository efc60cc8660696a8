-- Argo CD health of an EdgeDeployment (modelfleet.io/v1alpha1); Lua 5.1, as Argo CD runs it.
-- Healthy once the current revision is stable on every targeted device (Ready=True); a rollout
-- that was aborted or rolled back is Degraded; a paused one is Suspended.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local generation = obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil
    or (generation ~= nil and obj.status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = obj.status.phase or "Progressing"
local ready = condition("Ready")
local progressing = condition("Progressing")
local detail = ""
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  detail = ": " .. ready.message
elseif progressing ~= nil and progressing.message ~= nil and progressing.message ~= "" then
  detail = ": " .. progressing.message
end
local counts = obj.status.counts
if counts ~= nil and counts.targeted ~= nil then
  detail = detail .. " (" .. tostring(counts.updated or 0) .. "/" .. tostring(counts.targeted)
    .. " updated, " .. tostring(counts.healthy or 0) .. " healthy, "
    .. tostring(counts.failed or 0) .. " failed)"
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = "Rolled out" .. detail
elseif phase == "Degraded" or phase == "RollingBack" or phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = phase .. detail
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused" .. detail
else
  hs.status = "Progressing"
  hs.message = phase .. detail
end
return hs
