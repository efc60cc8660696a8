-- Argo CD health of a ModelConversion (modelfleet.io/v1alpha1); Lua 5.1, as Argo CD runs it.
-- The operator follows the kstatus convention: status.observedGeneration says which spec the
-- status describes, and the Ready condition is True once the conversion is approved.
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

local phase = obj.status.phase or "Pending"
local ready = condition("Ready")
local detail = ""
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  detail = ": " .. ready.message
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = "Converted, validated and approved" .. detail
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Failed" .. detail
elseif phase == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = "Awaiting approval (modelfleet approve " .. obj.metadata.name .. ")" .. detail
else
  hs.status = "Progressing"
  hs.message = phase .. detail
end
return hs
